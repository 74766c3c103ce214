"""Problems and problem sets: what students solve, teachers upload and fine-tuning learns from."""
