"""ddc-econ: the model layer of dynamic discrete choice models."""
