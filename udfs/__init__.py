"""Image functions of spark-image-etl: pure numpy/Pillow code and the thin Arrow functions over it."""
