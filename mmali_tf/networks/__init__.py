"""Neural networks of mmali_tf."""
