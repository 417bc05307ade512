"""The ``mallocgame`` command: parsing only, one module per area (:mod:`.main` dispatches to
:mod:`.memory`, :mod:`.agent`, :mod:`.bench`, :mod:`.rank`; :mod:`.common` and :mod:`.argtypes`
are what they share), calling the packages below. The console script is
``mallocgame.cli.main:main``."""
