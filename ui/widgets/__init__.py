"""Widgets the pages share or that are big enough to live on their own."""
