"""The methods: each a cloud half (a Flower Strategy) and a device half, behind one registry."""
