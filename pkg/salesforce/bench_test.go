package salesforce

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkParseQueryPage measures reading a full SOQL page (2,000 contacts with every field a
// poll selects) and turning each row into a change's record and content hash, as a poll does
// with every row it reads, read-back rows included.
func BenchmarkParseQueryPage(b *testing.B) {
	const rows = 2000
	stamp := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	records := make([]map[string]any, rows)
	for i := range records {
		r := map[string]any{
			"attributes":     map[string]any{"type": "Contact", "url": fmt.Sprintf("/services/data/v62.0/sobjects/Contact/003%015d", i)},
			"Id":             fmt.Sprintf("003%015d", i),
			"IsDeleted":      false,
			"OwnerId":        "005000000000001AAA",
			"SystemModstamp": stamp.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000-0700"),
			SyncKeyField:     fmt.Sprintf("c8f1d1a0-%04d-4c1e-9d2b-6b0a4e1f%04d", i%10000, i%10000),
			"Birthdate":      "1980-04-12",
			"AccountId":      "001000000000001AAA",
			"Account":        map[string]any{"attributes": map[string]any{"type": "Account"}, "Name": "Acme Corporation"},
		}
		for _, f := range contactText {
			r[f.api] = fmt.Sprintf("%s value %d", f.api, i)
		}
		r["Email"] = fmt.Sprintf("person%d@acme.example", i)
		records[i] = r
	}
	body, err := json.Marshal(map[string]any{"totalSize": 100000, "done": false,
		"nextRecordsUrl": "/services/data/v62.0/query/01gD0000002HU6KIAW-2000", "records": records})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		page, err := ParseQueryResult(body)
		if err != nil || len(page.Records) != rows {
			b.Fatalf("parse: %v", err)
		}
		for _, row := range page.Records {
			_ = contentHash(row)
			rec, err := contactFromRow(row)
			if err != nil || rec.GetContact().GetSurname() == "" {
				b.Fatalf("row %s: %v", row.String("Id"), err)
			}
		}
	}
}
