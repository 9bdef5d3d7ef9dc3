"""Files and settings: params.yaml as typed settings, deletion requests, the files stages hand each other,
data sets with stable record ids, byte-reproducible storage and atomic writes. No TensorFlow."""
