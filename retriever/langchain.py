"""Lore's retriever as a LangChain `BaseRetriever`, for LangChain applications (an edge adapter)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ingest.access import Filters, Principal


class LoreRetriever(BaseRetriever):
    """`LoreRetriever(retriever=r, principal=Principal("ana", ("support",)), k=5).invoke("pto carry over")`.

    Permissions hold here as everywhere: the principal is fixed when the adapter is built.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    principal: Principal
    filters: Filters | None = None
    k: int = 10

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        result = self.retriever.search(query, self.principal, self.filters, self.k)
        docs = []
        for h in result.hits:
            meta = h.to_dict()
            text = meta.pop("text")
            docs.append(Document(page_content=text, metadata=meta, id=h.chunk.id))
        return docs
