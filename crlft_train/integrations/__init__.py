"""C-RLFT's weighted loss inside other trainers (each module imports its trainer library)."""
