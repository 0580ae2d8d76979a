"""Checks of the Terraform in deploy/aws: fmt, validate, checkov, and apply/plan/destroy on moto."""
