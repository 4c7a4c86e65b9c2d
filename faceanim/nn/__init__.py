"""Generic network blocks shared by several methods, with the official parameter names."""
