"""Sweeps: a grid of scenario variants, each an ordinary run, and the regime map they give."""
