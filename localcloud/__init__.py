"""A Docker-free local cloud that runs template.yaml on this machine.

moto (server mode) plays AWS, an embedded PostgreSQL plays RDS, each Lambda runs in a warm local
worker with the template's handler, layer and environment, EventBridge rules deliver to Lambda and
Step Functions targets, and the REST API is served the way API Gateway serves it.
"""
