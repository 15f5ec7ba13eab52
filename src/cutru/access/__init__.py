"""Confidential use: principals, purposes, the one decision function, field encryption."""
