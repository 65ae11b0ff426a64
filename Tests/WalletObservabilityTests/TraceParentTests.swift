import Testing

@testable import WalletObservability

@Suite struct TraceParentTests {
    @Test func aValidTraceparentGivesItsTraceID() {
        #expect(
            TraceParent.traceID("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(
            TraceParent.traceID("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
                == "0af7651916cd43dd8448eb211c80319c")
    }

    @Test(arguments: [
        "",
        "garbage",
        // too short, too long
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        // wrong delimiters
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        // an all-zero trace id or span id
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // not hex
        "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        // version ff is forbidden; other versions are not parsed
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // a line break or quote smuggled in
        "00-4bf92f3577b34da6a3ce929d0e0e47\n6-00f067aa0ba902b7-01",
    ])
    func anInvalidTraceparentGivesNoTraceID(header: String) {
        #expect(TraceParent.traceID(header) == nil)
    }

    @Test func noHeaderGivesNoTraceID() {
        #expect(TraceParent.traceID(nil) == nil)
    }
}
