package sfsim_test

import (
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

// A simulated org behind a local HTTP server, with a user, seeded data and a connected app
// for the client credentials flow: what `tandem dev` starts for each org.
func Example() {
	sim := sfsim.New(sfsim.Config{DailyAllocation: 100_000, TokenLifetime: 2 * time.Hour})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sim.SetBaseURL(srv.URL)

	rep, err := sim.AddUser(sfsim.User{Username: "rep@acme.example", FirstName: "Rita", LastName: "Rep", IsActive: true})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := sim.SeedContacts(rep, 100, 1); err != nil {
		log.Fatal(err)
	}
	if _, err := sim.SeedEvents(rep, 50, 1); err != nil {
		log.Fatal(err)
	}
	if err := sim.AddConnectedApp(sfsim.ConnectedApp{ClientID: "tandem", ClientSecret: "secret", ExecutionUserID: rep}); err != nil {
		log.Fatal(err)
	}
	d := sim.Dump()
	fmt.Println(len(d.Contacts), len(d.Events))
	// Output: 100 50
}
