"""The IR: a typed SSA graph of primitive nodes, its text form and its verifier."""
from .graph import Graph, Node, TensorType, Value
from .text import IRParseError, parse_graph, print_graph
from .verify import IRVerifyError, verify

__all__ = ["TensorType", "Value", "Node", "Graph", "print_graph", "parse_graph", "verify",
           "IRParseError", "IRVerifyError"]
