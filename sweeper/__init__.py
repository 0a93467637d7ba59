"""lmsweep's Hydra sweeper: validate the whole sweep, set up MLflow once, launch, summarise."""
