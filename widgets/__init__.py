"""svmkit.widgets: the ipywidgets layer over the svmkit model."""
