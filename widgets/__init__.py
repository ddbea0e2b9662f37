"""svmkit.widgets: the ipywidgets layer over the svmkit model.

- :class:`WalkStepper` (``walk_stepper``): one translation, reference by reference.

Every widget catches its own errors and shows them as a message, never a traceback.
"""

from .setups import Setup, catalogue
from .stepper import WalkStepper, walk_stepper

__all__ = ["Setup", "WalkStepper", "catalogue", "walk_stepper"]
