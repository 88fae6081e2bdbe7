"""DcisionAI Tenant Security: the domain package shipped as the functions' Lambda layer."""

__version__ = "0.1.0"
