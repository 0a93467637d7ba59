"""lmsweep trainer: one training job = one resolved JobConfig = one MLflow run."""
