"""World implementations behind ``driving.types.World``: ``embedded`` (SUMO, default) and the CARLA adapter."""
