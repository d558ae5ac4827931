import Testing
@testable import MagicInitCore

@Suite struct BuiltinNetworksTests {
    @Test func test_caffeNet_parameterCount_matchesPublished() throws {
        let graph = try Graph(BuiltinNetworks.caffeNet())
        #expect(graph.parameters.reduce(0) { $0 + $1.count } == 60_965_224)
    }

    @Test func test_vgg16_parameterCount_matchesPublished() throws {
        let graph = try Graph(BuiltinNetworks.vgg16())
        #expect(graph.parameters.reduce(0) { $0 + $1.count } == 138_357_544)
    }
}
