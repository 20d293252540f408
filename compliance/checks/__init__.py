"""Check functions, one small module per theme. Every module here is imported by
the rule registry, and each @check("name") is bound to rules by the YAML catalogs."""
