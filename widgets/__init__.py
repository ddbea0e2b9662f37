"""svmkit.widgets: the ipywidgets layer over the svmkit model.

- :class:`WalkStepper` (``walk_stepper``): one translation, reference by reference.
- :class:`CostExplorer`: references per translation against levels and page sizes.

Every widget catches its own errors and shows them as a message, never a traceback.
"""

from .cost import CostExplorer
from .setups import Setup, catalogue
from .stepper import WalkStepper, walk_stepper

__all__ = ["CostExplorer", "Setup", "WalkStepper", "catalogue", "walk_stepper"]
