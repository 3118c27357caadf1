// Package tandemv1 is Tandem's API and internal messages (tandem.v1): the code generated from
// the .proto files beside it, and their source descriptors for server reflection.
package tandemv1

import (
	_ "embed"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// sourceDescriptors is `buf build --path proto/tandem/v1` of the .proto files beside this one:
// their descriptors with source code info (comments), and those of their imports. `make proto`
// writes it with the generated code, and `make proto-check` fails when it is stale.
//
//go:embed descriptors.binpb
var sourceDescriptors []byte

// SourceFiles returns the descriptors of Tandem's API with their comments. The generated Go code
// drops comments, so gRPC server reflection built on it would describe the API to grpcurl and
// other tools without a word of documentation; status-api serves these instead.
func SourceFiles() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(sourceDescriptors, &set); err != nil {
		return nil, fmt.Errorf("tandem.v1 source descriptors: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("tandem.v1 source descriptors: %w", err)
	}
	return files, nil
}
