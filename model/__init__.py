"""The model artefact: feature matrix, calibration, the champion bundle, the predictor and its explanations.

Training writes what this package defines; serving, batch scoring, monitoring and the gate load it.
"""
