package ews

import (
	"fmt"
	"strings"
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

// BenchmarkParseSyncFolderItems measures reading a full SyncFolderItems page (MaxSyncChanges
// created contacts, with the id and item class the client asks for), the answer of every
// mailbox's every cycle after a bulk change.
func BenchmarkParseSyncFolderItems(b *testing.B) {
	var changes strings.Builder
	for i := range MaxSyncChanges {
		fmt.Fprintf(&changes, `<t:Create><t:Contact><t:ItemId Id="AAMkAGI2TGuLAAAAAAEOAAAWp6zKVnx0RbE%04d=" ChangeKey="EQAAABYAAAD6HkNqsFJNRLABBK%04d"/>`+
			`<t:ItemClass>IPM.Contact</t:ItemClass></t:Contact></t:Create>`, i, i)
	}
	body := []byte(opResponse("SyncFolderItems", okMessage("SyncFolderItems",
		"<m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaU</m:SyncState>"+
			"<m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes>"+changes.String()+"</m:Changes>")))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := parseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		res, err := parseSyncFolderItems(env)
		if err != nil || len(res.Changes) != MaxSyncChanges || res.Changes[MaxSyncChanges-1].ID.ID == "" || res.Last {
			b.Fatalf("parse: %v", err)
		}
	}
}
