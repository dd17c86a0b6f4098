"""The bundled network library (the `.inc` specs), shipped inside the package."""
