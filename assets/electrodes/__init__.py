"""Electrode voltage (capacity, energy) from composition: records -> features -> RF + NN -> predictions."""
