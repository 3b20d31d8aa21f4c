"""Tests of the prometheus and prometheusremotewrite exporters."""
