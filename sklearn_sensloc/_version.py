"""The package's version, in a module of its own: modules that record it import it from here."""

__version__ = "0.2.dev0"
