"""Knowledge-distillation studio: teacher -> augmented transfer set -> BiLSTM student -> int8."""
