"""Benchmarks (not tests): ``make bench`` runs every module here that defines ``run()``."""
