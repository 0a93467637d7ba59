"""Installed, this directory is the package `lmsweep_conf` (setup.py), where the `lmsweep`
command's Hydra finds the configs (`pkg://lmsweep_conf`): Hydra reads configs from a regular
package only, one with this file. In a checkout, launch.py reads the directory itself."""
