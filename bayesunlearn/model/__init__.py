"""The model: the network f(x, θ) of one flat parameter vector, its prior and likelihood, curvature and
MAP training. The only layer that imports TensorFlow directly (through `model.tf`)."""
