"""svmkit.widgets: the ipywidgets layer over the svmkit model.

- :class:`WalkStepper` (``walk_stepper``): one translation, reference by reference.
- :class:`CostExplorer`: references per translation against levels and page sizes.
- :class:`MappingExplorer`: GVA -> GPA -> HPA of a PASID or a VM, the isolation audit,
  linked to a walk stepper.
- :class:`ExerciseWidget`: seeded problems (translate, count, which invalidation),
  Check and Reveal.
- :class:`PasidTableEditor`: a VT-d device's PASID entries, edits, binds, invalidations,
  caches with stale entries marked (needs :mod:`svmkit.scenario` and :mod:`svmkit.vtd`).

Every widget catches its own errors and shows them as a message, never a traceback.
"""

from .cost import CostExplorer
from .exercise import ExerciseWidget
from .mapping import MappingExplorer
from .pasid_editor import PasidTableEditor
from .setups import Setup, catalogue
from .stepper import WalkStepper, walk_stepper

__all__ = ["CostExplorer", "ExerciseWidget", "MappingExplorer", "PasidTableEditor", "Setup",
           "WalkStepper", "catalogue", "walk_stepper"]
