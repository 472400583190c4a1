//! Routing-graph rendering (DOT, Mermaid, SVG).
