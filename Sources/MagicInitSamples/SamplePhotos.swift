import Foundation

/// The embedded sample set: 32 Public Domain / CC0 photographs (shorter side 256 px),
/// the default images of `mi-coordinator`. Credits in `photos/CREDITS.md`.
public enum SamplePhotos {
    /// The folder holding the photos.
    public static var folder: String {
        Bundle.module.resourceURL!.appendingPathComponent("photos").path
    }
}
