package salesforce

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// testKey is one RSA key for the whole test binary: generating keys is slow.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func testKeyPEM(t testing.TB) (privPEM, pubPEM []byte) {
	t.Helper()
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
}

const (
	testOrgID       = "00D000000000001EAA"
	testClientID    = "3MVG9tandem.test.consumer.key"
	testIntegration = "integration@acme.example"
)

// jwtOrg is an org that authenticates with the JWT bearer flow against baseURL.
func jwtOrg(t testing.TB, baseURL string) *tandemv1.Org {
	priv, _ := testKeyPEM(t)
	return &tandemv1.Org{
		OrgId: testOrgID,
		Salesforce: &tandemv1.SalesforceConnection{
			Auth:                tandemv1.SalesforceAuth_SALESFORCE_AUTH_JWT_BEARER,
			MyDomainUrl:         baseURL,
			ClientId:            testClientID,
			PrivateKeyPem:       string(priv),
			IntegrationUsername: testIntegration,
		},
	}
}

func newTestConnector(t testing.TB, org *tandemv1.Org, opts ...Option) *Connector {
	t.Helper()
	// The tests' servers (httptest, the simulator) speak plain http.
	c, err := NewConnector(org, append([]Option{WithAllowHTTP(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
