"""HTTP handlers, bound to `openapi.yaml` by operationId: one module per resource."""
