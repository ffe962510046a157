"""LangChain adapter for rerank-core.

The document compressor and tool selector are not built yet (tracked in the adapters issue); this
package installs and imports so that the workspace layout and dependency isolation can be tested.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
