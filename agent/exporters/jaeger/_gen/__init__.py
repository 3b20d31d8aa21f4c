"""Generated Jaeger api_v2 protobuf modules (see ../proto/generate.py). Do not edit."""
