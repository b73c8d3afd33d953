//! Compact kernel symbol table embedded by igvm-build (placeholder, issue 4).
