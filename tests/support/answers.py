"""Checks every answer must pass: each citation verified against its stored chunk."""



def _check_citations(ans, store):
    for c in ans.citations:
        chunk = store.get_chunks([c.chunk_id])[c.chunk_id]
        assert c.quote in chunk.text and len(c.quote) <= 400
        assert store.document_text(c.doc_id)[c.start:c.end] == c.quote  # the span points at the quote
        assert c.version == store.get_document(c.doc_id).version
        # a number the text does not use: a further quote from the answer's first document (context)
        assert f"[{c.marker}]" in ans.text or c.doc_id == ans.citations[0].doc_id
    assert f"[{ans.citations[0].marker}]" in ans.text
