package statusapi

import (
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// registerReflection serves gRPC server reflection (v1, and v1alpha for older clients) with
// Tandem's API described from its source descriptors, comments included, so that
// `grpcurl describe` shows what each RPC and field means. Everything else the server offers
// (the health service) is described from the compiled-in descriptors.
func registerReflection(srv *grpc.Server) error {
	files, err := tandemv1.SourceFiles()
	if err != nil {
		return err
	}
	opts := reflection.ServerOptions{Services: srv, DescriptorResolver: firstOf{files, protoregistry.GlobalFiles}}
	reflectionv1.RegisterServerReflectionServer(srv, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(opts))
	return nil
}

// firstOf resolves descriptors from the first resolver that knows them.
type firstOf []protodesc.Resolver

func (rs firstOf) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	for _, r := range rs {
		fd, err := r.FindFileByPath(path)
		if !errors.Is(err, protoregistry.NotFound) {
			return fd, err
		}
	}
	return nil, protoregistry.NotFound
}

func (rs firstOf) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, r := range rs {
		d, err := r.FindDescriptorByName(name)
		if !errors.Is(err, protoregistry.NotFound) {
			return d, err
		}
	}
	return nil, protoregistry.NotFound
}
