package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// adminCommands are the commands that administer a running Tandem through its API.
func adminCommands(stdout, stderr io.Writer) []*cobra.Command {
	return []*cobra.Command{
		statusCommand(stdout, stderr),
		usersCommand(stdout, stderr),
		watchCommand(stdout, stderr),
		errorsCommand(stdout, stderr),
		planCommand(stdout, stderr),
		configCommand(stdout, stderr),
		orgCommand(stdout, stderr),
		connectionCommand(stdout, stderr),
		resetCommand(stdout, stderr),
		resumeCommand(stdout, stderr),
		deletesCommand(stdout, stderr),
		tokenCommand(stdout, stderr),
	}
}

// userRef is how a command names a user: by email, or by Salesforce User Id (005...).
type userRef struct{ id, email string }

func parseUser(s string) userRef {
	if strings.Contains(s, "@") {
		return userRef{email: s}
	}
	return userRef{id: s}
}

func (u userRef) String() string {
	if u.email != "" {
		return u.email
	}
	return u.id
}
