package ews

import (
	"fmt"
	"testing"

	"github.com/beevik/etree"
)

// BenchmarkParseGetItem measures reading a full GetItem page of contacts (MaxGetBatch items with
// every mapped field), the client's most frequent large answer.
func BenchmarkParseGetItem(b *testing.B) {
	var msgs []string
	for i := range MaxGetBatch {
		holder := etree.NewElement("m:Items")
		contactToXML(holder, fullContact(), fmt.Sprintf("sk-%d", i))
		item := firstChild(holder)
		id := etree.NewElement("t:ItemId")
		id.CreateAttr("Id", fmt.Sprintf("AAMkItem%d=", i))
		id.CreateAttr("ChangeKey", "EQAAAB")
		item.InsertChildAt(0, id)
		addText(item, "t:LastModifiedTime", "2026-01-01T10:00:00Z")
		doc := etree.NewDocument()
		doc.SetRoot(holder)
		s, err := doc.WriteToString()
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, okMessage("GetItem", s))
	}
	body := []byte(opResponse("GetItem", msgs...))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := parseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		res, err := parseItemMessages(env, "GetItem", MaxGetBatch, func(int) string { return "" })
		if err != nil || len(res) != MaxGetBatch || res[MaxGetBatch-1].Item.Record.GetContact().GetSurname() == "" {
			b.Fatalf("parse: %v", err)
		}
	}

}
