"""lanewatch.stream.config.schema: Configuration: the schema (pydantic models), loading, checks
beyond the schema, ${ENV} substitution, the generated reference.
"""
