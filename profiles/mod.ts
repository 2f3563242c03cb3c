/**
 * Built-in profiles and the profile schema, imported as modules so `deno compile` embeds them (nothing is
 * read from beside the source at run time). Values are untyped here: agent/profiles.ts validates them like
 * any user file, and a test keeps every built-in lint-clean.
 */
import hunyuanVideoI2v from "./hunyuan-video-i2v.json" with { type: "json" };
import morphicFramesToVideo from "./morphic-frames-to-video.json" with { type: "json" };
import yolo from "./yolo.json" with { type: "json" };
import profileSchema from "./profile.schema.json" with { type: "json" };

/** Built-in profiles by name, in the order `profiles list` shows them. */
export const BUILTIN_PROFILES: Readonly<Record<string, unknown>> = {
  "hunyuan-video-i2v": hunyuanVideoI2v,
  "morphic-frames-to-video": morphicFramesToVideo,
  "yolo": yolo,
};

/** JSON Schema (draft 2020-12) for profile files. */
export const PROFILE_SCHEMA: Record<string, unknown> = profileSchema;
