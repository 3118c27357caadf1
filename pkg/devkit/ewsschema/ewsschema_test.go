package ewsschema

import (
	"strings"
	"testing"
)

const envelope = `<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>
<soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder></soap:Body>
</soap:Envelope>`

func TestValidate(t *testing.T) {
	// Wrong child order: FolderIds before FolderShape.
	bad := strings.Replace(envelope,
		`<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds>`,
		`<m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>`, 1)
	problems, err := Validate(t.Context(), [][]byte{[]byte(envelope), []byte(bad), []byte("not xml")})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 || problems[0].Index != 1 || problems[1].Index != 2 {
		t.Fatalf("problems = %+v, want envelopes 1 (wrong order) and 2 (not XML)", problems)
	}
}

func TestParts(t *testing.T) {
	parts, err := Parts([]byte(envelope))
	if err != nil || len(parts) != 2 {
		t.Fatalf("Parts = %d, %v", len(parts), err)
	}
	for _, p := range parts {
		if !strings.Contains(string(p), `xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"`) {
			t.Errorf("namespace declarations not carried over: %s", p)
		}
	}
}
