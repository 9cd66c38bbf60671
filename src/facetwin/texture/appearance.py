"""Appearance stage: photo -> diffuse skin albedo in the ICT UV tiles, the photo's lighting, skin parameters.

:func:`estimate_appearance` runs, in linear light (:mod:`facetwin.frames`):

1. **Photometric refinement** (:func:`facetwin.fit.photometric.refine_photometric`): pose, shape, SH light,
   the skin's broad sheen under the key light (:class:`facetwin.texture.delight.Sheen`, where one explains
   the pixels) and a low-resolution albedo from the skin pixels, with outliers (hair, glasses, beard, paint,
   hands) rejected.
2. **Unwrap**: every texel of the face tile (0) and the back-of-head tile (1) is placed on the refined mesh,
   projected into the photo and sampled (bilinear, full resolution). Its confidence in [0, 1] is the
   product of: visibility (its depth matches the z-buffer of the photo's view), the viewing angle
   (:data:`VIEW_COS_RAMP`), the distance to the silhouette, to depth edges and to the boundary of what may
   be skin (:data:`EDGE_RAMP_FACE`), and being inside the detector's face oval and outside the occluders the
   photometric fit found (:func:`occluder_mask`). Only texels inside the face oval can count, so background
   and hair around the face never land on the skin.
3. **Delight**: the fitted sheen is taken off the sample, which is divided by the shading of the fitted
   light on the mesh's normals with the light-weighted ambient occlusion of :mod:`facetwin.texture.delight`;
   the light's colour is not taken beyond what it is where the photo saw the skin lit and facing it
   (:func:`_seen_light_colours`). Where the sheen is most of the photo's colour, the confidence falls
   (:data:`SHEEN_OF_PHOTO`).
4. **White balance and scale** (colour photos): light and albedo are only known up to a common scale per
   channel. The light's colour is taken from the whites of the eyes where enough of them is seen
   (:data:`SCLERA_ALBEDO_LINEAR`), and what is left off the skin-colour manifold of
   :mod:`facetwin.texture.skin` on the cheeks is put down to the light too; then the one overall scale is
   the one that puts the cheeks on the manifold: the skin model fixes the brightness that goes with the
   cheeks' chromaticity, so dark skin stays dark and light skin light whatever the exposure. Photos are
   rarely colorimetric, though: a vivid rendering makes light skin look like darker skin to the manifold.
   Where white surfaces are seen beside the face (a collar, a shirt, a wall: :func:`scene_white`), they
   are taken for a white facing the camera under the fitted light, a second estimate of the scale weighed
   in with the manifold's; where the manifold's reading would make such a white implausibly dark, the photo
   is taken to be vivid and the albedo is desaturated (:func:`_vividness`). Grayscale and sepia photos
   have no chromaticity: their scale assumes the photo's white point is a white surface lit as the cheeks
   are (:func:`_exposure_albedo`), and the albedo is gray. Where the whites of the eyes are seen, their
   known albedo is a further, independent estimate of the scale, weighed in by how much of them is seen
   (:func:`_calibrate`).
5. **Folds and shine**: the shadows of folds and creases the mesh lacks, gray in the white-balanced albedo
   where a change of the skin's pigments has colour, are divided out between 1 and 8 mm
   (:func:`_take_off_folds`): by colour on light skin; on dark skin, where melanin darkens all channels
   alike, colour says little, and the shadows are told from marks by their shape (folds are lines); in a
   monotone photo by their shape alone. This runs after the beard is found (below), whose strands are lines
   too. The specular highlights sharper than the sheen are taken off the face tile
   (dichromatic model, :func:`facetwin.texture.delight.remove_specular`); where what was taken off is a
   large share of the colour, the confidence falls (:data:`SHINE_CONFIDENCE`) and the mirrored side counts
   instead. The glints of lip gloss, brighter than the lips around them and no yellower, are taken down to
   the lips' colour (:func:`glints_off`).
   A beard or moustache on the lower face, told from skin by its texture
   (:func:`facetwin.texture.hair.hair_cover`), counts as unseen; where it covers much of the lower face
   (:data:`HAIR_REFIT_FRACTION`), the stage runs again with its pixels left out of the photometric fit,
   whose light it had pulled.
   Then texels whose colour is implausible for this skin (off its chromaticity, far brighter:
   :func:`_plausibility`) lose their confidence, with a rim around patches of them
   (:func:`grow_implausible`), and so do patches far darker than the skin that reach the edge of what was
   seen of it, away from the eyes and brows (:func:`dark_fringe`): hair thinning over a cheek's edge, a
   shadow at the jaw, where the fill would otherwise spread their darkness. Last, patches of the skin kept
   that are still brighter than the skin around them by more than :data:`SKIN_GLINT_LOG` (shine the
   dichromatic split missed: a nose wing's, a cheekbone's, a rim light's warm streak) are taken down to
   that and to its colour, away from the eyes and brows (:func:`glints_off`).
6. **Complete** (:func:`facetwin.texture.complete.complete_texture`): mirrored through the face's left-right
   symmetry, a seamless Poisson fill, settling to the person's skin tone (the cheeks' albedo) where nothing
   was seen (back of the head, neck, ears). What was filled takes the fine grain of the well-seen skin
   (:func:`facetwin.texture.complete.synthesize_detail`: noise with its spectrum, no copied pores or
   hairs, at most :data:`DETAIL_MAX_SPREAD` per band), so a fill does not show as a smooth patch beside
   the photo's texture; where the seen skin has more (film grain, a print's mottle), its own detail is
   scaled down to that (:func:`facetwin.texture.complete.scale_detail`), so the two match. A gutter
   (:func:`facetwin.texture.complete.pad_texture`) fills the texels off the surface.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np

from facetwin.fit.landmarks import Fit, SurfacePoints
from facetwin.fit.photometric import FEATURE_MARGIN_FACE
from facetwin.model.ict import HeadModel
from facetwin.texture.complete import all_channels, channel_mean, channel_sum
from facetwin.texture.delight import Sheen
from facetwin.texture.delight import smoothstep as _smoothstep

SCLERA_ALBEDO_LINEAR = (0.66, 0.66, 0.66)
"""Assumed diffuse albedo of the white of the eye, linear sRGB: a neutral white (sRGB about 0.84). It is the
reference for the light's colour and, weighed in, for the albedo's scale. Neutral because that is how the
whites of the eyes come out in photos under white light (model_face.jpg: within 3 % per channel); a warm
reference read a neutral sclera as bluish light and warmed every albedo by as much."""
SCLERA_MIN_PIXELS = 12
"""Fewer visible sclera pixels than this (both eyes) give no white-balance evidence."""
SCLERA_FULL_PIXELS = 80
"""From this many sclera pixels on, the sclera's colour is trusted fully (up to :data:`SCLERA_MAX_TRUST`)."""
SCLERA_MAX_TRUST = 0.9
"""Largest weight of the sclera's colour against the prior of white light: the sclera is small, veined and
shadowed by the lids."""
SCLERA_MAX_OFF_LOCUS = 0.15
"""A sclera whose colour, over :data:`SCLERA_ALBEDO_LINEAR`, is farther than this (natural-log chroma) from
every blackbody light of 2300-15000 K (:func:`facetwin.texture.skin.planckian_distance`) is not trusted: a
sunset or tungsten light can make the whites of the eyes orange, but no real light makes them green, red or
magenta; a mis-located sclera (a lid, a tinted lens, glare) can."""
SCLERA_MIN_OVER_SKIN = 0.75
"""The sclera's delighted brightness must be at least this multiple of the cheeks' to be trusted. The
lightest skin has about 0.6 of the sclera's albedo, but the lids and brow shade the eye more than the light's
low-order model says, so an open eye can read a little darker than the cheeks (laos: 0.93); sunglasses, and
lashes and lids of a squint (smiling_woman: 0.3), read far darker."""
SCLERA_HIDDEN_BELOW_SKIN = 0.5
"""An eye whose "sclera" is darker than this multiple of the cheeks is covered (sunglasses): sclera is
several times brighter than any skin, and a shadowed, mis-fitted eye still reaches about the skin's
brightness."""
HIDDEN_EYE_MIN_PIXELS = 40
"""An eye is only judged covered on this many pixels of its opening: a narrowed, smiling eye shows little
sclera and is dark without being covered."""
HIDDEN_EYE_MIN_OPENING = 0.17
"""...nor when the detector's eye contour encloses less than this fraction of its width squared (an open eye
about 0.2-0.4, a smiling or squinting one 0.1-0.16): the detector draws an open eye behind sunglasses."""
HIDDEN_EYE_GROW = 1.8
"""An eye judged hidden (no white where the sclera should be) is left out of the texture over its contour
scaled by this about its centre: lids, lashes and the rim of the lens."""
SCLERA_BRIGHTNESS_QUANTILES = (0.7, 0.95)
SCLERA_MIN_SHADING = 0.25
"""Sclera pixels whose shading (mean over the channels) is under this share of a surface's facing the
camera are not sampled: a dark pixel divided by a small shading reads bright. Under one-sided light the lens
of a pair of sunglasses over the shadowed eye read as a bluish white, and the cast taken from it lightened
dark skin from ITA -50 to -19."""
IRIS_EXCLUDE = 1.35
"""Pixels within this many iris radii of the iris centre are not sclera."""
WHITE_POINT_QUANTILE = 0.995
WHITE_ALBEDO = 0.9
"""Monotone photos: the photo's brightest (99.5 %) value is taken for a white surface of this albedo lit as
the cheeks are."""
SCENE_WHITE_ALBEDO = 0.8
"""Colour photos: the brighter quarter of the neutral surfaces beside the face (a collar, a shirt, a wall) is
taken for a white of this albedo facing the camera under the fitted light (white fabric and paint 0.7-0.9)."""
SCENE_WHITE_REGION = (1.5, 1.0, 2.0)
"""Where scene whites are looked for, in face-oval heights from the oval's centre: sideways, up, down."""
SCENE_WHITE_EXCLUDE = 1.3
"""The face oval scaled by this about its centre is left out (skin, hair and ears at the face's edge)."""
SCENE_WHITE_MAX_CHROMA = 0.2
"""Neutral: the norm of a pixel's zero-mean log RGB is at most this (gray, white, a faint cast); skin, even
the palest, is above 0.35 in the shared photos."""
SCENE_WHITE_OVER_SKIN = 1.3
"""A white is brighter than any skin lit alike: candidates are at least this much brighter than the cheeks."""
SCENE_WHITE_CLIP = 0.97
"""Pixels with a channel at or above this (sRGB) are clipped: their brightness is a bound, not a value."""
SCENE_WHITE_MIN_SHARE = 0.05
"""Fewer neutral pixels than this share of the face oval's area (a button, a glint) give no estimate."""
SCENE_WHITE_FULL_SHARE = 0.15
"""From this share of the face oval's area on, the scene white has its full weight."""
SCENE_WHITE_TRUST = 0.6
"""At most this weight (log scale, against the skin manifold's) for the scene white. Neither cue is sure:
photos are rarely colorimetric (a vivid rendering makes light skin look like darker skin to the manifold),
and a "white" may be a gray or lit less than the face (which lightens the skin)."""
SCENE_WHITE_BRIGHTNESS = (0.55, 0.85)
"""sRGB brightness of the scene white from which it has any weight, and from which its full weight. A gray
wall is neutral and brighter than dark skin too, and taken for a white it lightens the skin: dark skin (ITA
-50) before a wall of sRGB 0.45 came out at ITA +5. The brighter a neutral surface is in a photo exposed for
the face, the likelier it is white."""
VIVID_MAX = 1.6
"""Largest saturation of a photo's colour rendering considered: its log chromaticity is the scene's times
up to this (consumer cameras and editors render colour vividly; a colorimetric photo is 1)."""
VIVID_LOG_SIGMA = 0.25
"""Prior on that saturation: log-normal around 1 (colorimetric) with this sigma."""
VIVID_WHITE_MIN_ALBEDO = 0.5
VIVID_WHITE_LOG_SIGMA = 0.5
"""A scene white lit as the face, given an albedo under this by the skin manifold's scale, says the photo
is vivid (:func:`_vividness`), with a log-normal misfit of this sigma; above it, it may be a gray wall and
says nothing."""
SCLERA_SCALE_TRUST = 0.7
"""Largest weight of the whites of the eyes in the albedo's overall scale (a geometric mean with the skin
model's or the exposure's estimate): their albedo is known, but lids and lashes shadow them more than the
fitted mesh does, so they read a little dark."""
OVERLAY_MASK_PX = 512
"""The overlay's confidence mask and sheen are rendered at most this many pixels across (they are smooth) and
enlarged."""
OVERLAY_CONFIDENCE_RAMP = (0.05, 0.3)
"""The re-rendered skin covers the photo in renders/overlay.png as the texture's confidence rises over this
range: where the photo did not see skin (hair, a hand), the photo shows."""
SCLERA_SCALE_FULL_PIXELS = 150
"""The whites of the eyes weigh fully in the albedo's scale from this many visible pixels on (a 1000 px
face shows about 1000), in proportion below."""
SCLERA_SCALE_MAX_RATIO = 3.0
"""The sclera's weight in the scale falls to 0 as its estimate departs from the other one by this factor."""
VIEW_COS_RAMP = (0.15, 0.45)
"""Confidence rises from 0 to 1 as the cosine between the surface normal and the line of sight goes
from the first value (81 degrees) to the second (63 degrees)."""
EDGE_RAMP_FACE = 0.05
"""Confidence rises from 0 at the silhouette or the edge of the face oval to 1 at this fraction of the face
size (about 7 mm) inside it: the fit is least sure there, and hair and background are near."""
DEPTH_EDGE_RAMP_FACE = 0.015
"""Confidence rises from 0 at an inner depth edge (the nose's side, the lips over the teeth) to 1 at this
fraction of the face size (about 2 mm)."""
OPENING_GROW_FACE = 0.008
"""The detector's mouth and eye openings, widened by this fraction of the face size (about 1 mm): skin
texels that land in them see teeth or the eyeball, where the fitted lids and lips are off."""
EYE_WHITE_REACH_FACE = 0.03
"""How far past the detector's eye outlines (a fraction of the face size, about 4 mm) the white of the eye
may still show (:func:`eye_white_reach`): on a small face the detector's lower lids ran up to two pixels
inside the white (classroom_in_tanzania's white streaks on the lower lids). Not the mouth's: the lips are
narrower than this, so what lies beyond it is not the lips, and face_paint's lit teal lips read as teeth."""
EYE_WHITE_BRIGHTER_LOG = 0.25
"""A pixel past an eye's outline is taken for its white only if it is at least this much brighter (natural
log) than the lids' pixels beyond the reach, as well as nearer the white's colour than theirs."""
DEPTH_EDGE_CM = 0.5
"""A jump of this much between neighbouring pixels' depths is a depth edge (an occluding contour)."""
DEPTH_TOLERANCE_PX = 2.0
"""A texel is visible when its depth is within this many pixel footprints (over the cosine) of the
z-buffer; plus :data:`DEPTH_TOLERANCE_CM`."""
DEPTH_TOLERANCE_CM = 0.1
SEEN_LIGHT_MIN_COS = 0.5
SEEN_LIGHT_MIN_LEVEL = 0.5
SEEN_LIGHT_QUANTILES = (0.02, 0.98)
"""The light's colour is held, per channel, to these quantiles of its colour on the vertices facing the
camera at least this much and lit at least this fraction of their median (:func:`_seen_light_colours`):
smiling_woman's cheeks turned green where the fitted light was dim and extrapolated."""
SHADING_MIN_FRACTION = 0.05
"""Texels whose shading is under this fraction of the face's median are in shadow: no confidence."""
SHADING_SLIP_MM = 1.0
"""How far the fitted surface may lie from the photo's at a crease the model only roughly has (the nose's
wings, the nostrils, the mouth's corners, a smile's folds)."""
SHADING_SLIP_RAMP = (0.15, 0.3)
"""A texel keeps its confidence while the shading within :data:`SHADING_SLIP_MM` of it differs from its own
by at most the first log change, and has lost it at the second: there the photo is divided by a shading
that may belong a millimetre away. smiling_woman's nose wings, lit where the fitted wings are in
shadow, came out as bright crescents."""
CREASE_REACH_MM = 3.0
"""How far a spot far darker or brighter than the skin may lie from a crease of the fitted surface (shading
that changes by :data:`SHADING_SLIP_RAMP` within this) and still be taken for that crease's shading seen
beside it: smiling_woman's nostril openings, seen 1-2 mm outside the fitted ones, came out as dark dots on
her nose wings, luciano's lit nostril rims, over the fitted openings' shadow, as bright pink ones, and the
shadow in smiling_woman's mouth corners as dark blobs on her lips (measured there against the lips)."""
CREASE_DARKER_RAMP = (0.4, 0.8)
"""Near a crease (:data:`CREASE_REACH_MM`), a texel keeps its confidence while its delighted luminance is
at most the first natural-log step below the skin around it (:data:`CREASE_REFERENCE_MM`), and has lost it
at the second. Freckles are some 0.2-0.5 below the skin; a nostril's opening 1.5-2."""
CREASE_BRIGHTER_RAMP = (0.2, 0.4)
"""The same above the skin around it: skin has few light marks, and those faint (luciano's lit nostril rims
were 0.35-0.45 above the skin around them)."""
CREASE_REFERENCE_MM = 3.0
"""Gaussian scale of the skin around a texel that its luminance is measured against."""
CREASE_WORK_SIZE = 2048
"""Larger tiles are judged for crease spots at this size (a millimetre is 10 texels) and the result enlarged:
at 4096 the full-size filters took 2.7 s."""
FRAME_RIM_FACE = 0.1
"""Face sizes: once a frame is found, what lies this near an eye's opening is lens or rim, and the outliers
and dark lines that reach it are the rest of the frame (:func:`occluder_mask`): a soft frame is only partly
an outlier, and the skin seen through a lens is bent and tinted."""
BRIDGE_HALF_HEIGHT = 0.3
"""How far above or below the line through the eyes' centres (in eye distances) a frame's bridge may cross
(:func:`occluder_mask`)."""
FRAME_MAX_THICKNESS = 0.05
"""Face sizes: dark lines up to this thick are found (a closing of this size fills them)."""
FRAME_DARKER = 1.15
"""A candidate pixel this much darker than the closing of its surroundings lies on a dark line."""
OCCLUDER_MIN_AREA = 0.004
"""Outlier blobs smaller than this fraction of the face's area (about 1 cm^2) are marks on the skin (moles,
pores, specks of shine) and stay in the texture; larger ones, or any that reach the edge of the face oval,
are occluders (hair, hands, glasses, beard) and are left out."""
FEATURE_MARGIN_THICKNESS = 0.06
"""The most a feature's margin is thick, a fraction of the face size (a strand of hair is thicker)."""
FEATURE_MARGIN_SHARE = 0.75
"""An enclosed outlier blob no thicker than :data:`FEATURE_MARGIN_THICKNESS`, with at least this share of
its pixels within :data:`FEATURE_MARGIN_FACE` of a feature, is the feature's margin, however long, and not
an occluder: a band along a brow and another under the eye would otherwise be taken for a frame, and the
whole eye between them hidden."""
SHINE_MIN_GAIN = 1.25
SHINE_DESATURATION = (0.1, 0.9)
SHINE_OFF_AXIS = 0.12
"""Shine-like pixels (:func:`shine_like`): at least this much brighter than the fitted diffuse skin, having
lost this range of the skin's chromaticity (a highlight on dark skin is nearly white: up to 0.9), and
within this natural-log distance of the skin-plus-white line."""
SHINE_BLOB_SHARE = 0.5
"""An outlier blob with at least this share of shine-like pixels is a highlight, not an occluder (luciano's
nose tip: 0.62; paint and lit background at most 0.47 among the shared photos)."""
OCCLUDER_INTO_FEATURES = 0.05
"""How far (fraction of the face size, about 7 mm) an occluder is followed into a neighbouring feature."""
OCCLUDER_DILATE = 0.025
"""Occluders are widened by this fraction of the face size (about 2 mm): their borders blur into skin."""
MONOTONE_SATURATION = 0.02
"""Chromaticity distance from gray (in r, g, b chromaticity coordinates) under which a pixel is gray."""
MONOTONE_OFF_HUE = 0.0075
"""Chromaticity distance from the toning hue (the half-line from gray through the saturated pixels' mean
hue; 95th percentile of the saturated pixels) under which a photo is toned. A distance, not an angle: a
faintly toned print's compression noise turns its hue by degrees where it is nearly gray (300w_indoor_020, a
cool-toned print of saturation 0.02-0.05: 6.7 degrees of hue spread, 0.003 off its hue); the colour photos
among the shared and bench ones are 0.018 (a warm-graded portrait, 300w_indoor_029) to 0.3 off theirs."""
MONOTONE_MIN_SUM = 0.15
"""Pixels with r + g + b (sRGB) under this are too dark for a reliable hue."""
ISLAND_MIN_MM2 = 10.0
"""A seen patch smaller than this (a disc 3.6 mm across) amid what the photo did not show is dropped before
the fill (:func:`facetwin.texture.complete.drop_islands`). frederick_douglass_1879's shadowed eyes left
islands of 2-7 mm2 at their corners, black dots in the fill and in its mirror; the smallest island on the
shared photos that is what it seems, woman_portrait's iris, is 32 mm2."""
CAPTURE_MAX_PX = 2048
"""Longest side of the photo region rasterised for the visibility test; larger faces are rasterised at
reduced scale (the photo itself is always sampled at full resolution)."""
BACK_TILE_SCALE = 0.5
"""The back-of-head tile is unwrapped and completed at this fraction of the texture size and upsampled:
it is seen at grazing angles at best and settles to the skin tone; its detail is low."""
IMPLAUSIBLE_GROW_UV = 0.01
"""How far (a fraction of the tile, about 2 mm on the face) the implausibility of a patch of skin reaches
past it (:func:`grow_implausible`); specks narrower than this do not reach."""
GROW_MAX_GRID = 1024
"""Largest grid :func:`grow_implausible` filters on; larger tiles are reduced by blocks first."""
SHINE_CONFIDENCE = 0.35
"""A texel whose removed shine is this multiple of its diffuse brightness (averaged over
:data:`SHINE_SHARE_SMOOTH_UV`) has lost all confidence. The diffuse colour left under shine is the local
skin chromaticity times what the split leaves of the brightness, and its error grows with the share taken
off: under a broad sheen that the fitted light already half explains (model_face's lit cheek) a shine of
0.5-1x the diffuse leaves a dark gray, which at 1.0 kept half its weight against the mirrored cheek and
showed as a gray ring; at 0.25 the dewy forehead of woman_portrait, glints over a fifth of it, lost half
its weight."""
SHEEN_OF_PHOTO = (0.7, 0.9)
"""A texel keeps its confidence while the fitted sheen is at most the first share of its colour in the photo
and has lost it at the second, where the diffuse left is a tenth of the photo and a tenth's error in the sheen
is all of it. The sheen is a fitted model, not a per-texel split, so it is trusted further than other shine
(:data:`SHINE_CONFIDENCE`: judged against the diffuse left, the known-answer scenes' dark skin, whose sheen
is larger than its diffuse colour, lost the texels it had right and the fill from the other cheek raised its
error from 0.065 to 0.072); a sheen larger than the photo is the model's error (the fitted nose tip lit where
the real one is not)."""
FOLD_SCALES_MM = (1.0, 8.0)
"""The scales of the shading left by folds and creases the mesh lacks (:func:`_take_off_folds`): finer is
the skin's grain and pores, coarser the fitted light's own error (and wider bands took more than folds
off: luciano's re-render lost 2 dB more at 15 mm, his under-eye skin paler than the photo's)."""
FOLD_MAX_LOG = 0.5
"""The most a fold's shading is taken off (natural log, a factor 1.65 either way): deeper is a hole, a
mark or a hair the other tests have not caught."""
FOLD_HAIR_MARGIN_MM = 3.0
"""No fold is looked for within this distance of the eyes and brows (their hairs reach past the regions'
outlines), and the correction fades in over as much again beyond it."""
INTERREFLECTION_MAX_ALBEDO = 0.8
"""The brightest skin albedo lighting its own creases: a cheek read brighter (an overexposed photo) would make
them almost as lit as the open skin."""
FOLD_LOWER_LID_MARGIN_MM = 1.0
"""The same margin straight below the eyes: the lower lashes are short, and the crease of a smile or of
tired eyes lies right under them (smiling_woman's dark bands there were left in her map with the whole
margin)."""
FOLD_FEATURE_FADE_MM = 1.0
"""Beyond the lips and nostrils, the fold correction fades in over this distance."""
HAIR_REFIT_FRACTION = 0.1
"""Where hair (:func:`facetwin.texture.hair.hair_cover`) covers more than this share of the beard region,
the light is fitted again without it: frederick_douglass_1879's white beard (0.45) had pulled the fitted
light; the clean-shaven faces of the shared photos read 0-0.06."""
HAIR_PIXELS_GROW = 1
"""Pixels the hair's projection into the photometric fit's crop is widened by (its outline's texels reach
only the pixels they fall in)."""
LIP_GLINT_LOG = 0.15
"""How much brighter (natural log of the mean channel) than the lips around it a lip texel may be before it
is taken for a glint of their gloss (:func:`glints_off`): the lips' own texture and lines stay within."""
LIP_GLINT_YELLOWER = 0.1
"""A bright lip texel whose log blue-green ratio is this much under the lips' around it is skin, not a
glint (:func:`glints_off`)."""
LIP_GLINT_SIGMA_UV = 0.006
"""Gaussian sigma, a fraction of the tile (about 2 mm), of the lips' surroundings in :func:`glints_off`."""
SKIN_GLINT_LOG = 0.1
"""How much brighter (natural log of the mean channel) than the skin around it a patch of the seen skin may
be before it is taken for shine left over (:func:`glints_off`). Skin's own albedo is seldom lighter than
its surroundings: pigment (freckles, moles, stubble) darkens it. On the shared photos this takes down
luciano's lit nose tip, smiling_woman's cheekbones' rims, woman_three_quarter's nose wings, woman_portrait's
jaw corners and the lit bumps of frederick_douglass_1879's upper lip (at 1024, 0.2-2.2 % of the texels of
those five by more than 8 levels; at 0.15, 0.1-1.1 %). The re-render, which has no shine to put back, loses
0.2-0.9 dB of PSNR on the shared photos."""
SKIN_GLINT_SIGMA_UV = 0.025
"""Gaussian sigma, a fraction of the tile (about 8 mm), of the skin around a patch in :func:`glints_off`:
wide enough to hold a nose wing's shine, and what is broader (a cheekbone's whole sheen) is not told from
the albedo by this step."""
SKIN_GLINT_PATCH_UV = 0.002
"""Gaussian sigma, a fraction of the tile (about 0.7 mm), of the patch a skin texel is judged and moved with
in :func:`glints_off`: pores and grain move with their patch and stay. A patch this wide takes down a 5 mm
shine 1.36 times the skin to 1.13 times it; one twice as wide, whose mean is lower than the shine's peak,
to 1.17."""
SKIN_GLINT_FADE_UV = 0.006
"""Fraction of the tile (about 2 mm) over which :func:`glints_off` fades in from the edges of the eyes',
brows' margin (:data:`EYE_MARGIN_MM`), the lips and the nostrils."""
SHINE_SHARE_SMOOTH_UV = 0.01
"""Gaussian sigma (a fraction of the tile, about 2 mm on the face) over which the shine's share of the
colour is averaged before it lowers the confidence: the glints on the pores of dewy skin (woman_portrait)
are a large share of their own texels, and speckled the confidence."""
MIN_CHEEK_TEXELS = 50
SHINE_FADE_UV = 0.018
"""Distance from the eyes, lips and brows (a fraction of the tile, about 3.5 mm on the face) over which the
shine removal fades in: the regions are coarse by nature, and a hard edge of the treatment is a seam in the
texture."""
CHROMA_PLAUSIBLE = 0.25
CHROMA_IMPLAUSIBLE = 0.45
"""Log-chromaticity distance from the skin tone (norm over the zero-mean log channels) at which a texel's
confidence starts to fall, and where it is gone: blush, tan lines and freckles stay under 0.2."""
PLAUSIBILITY_SMOOTH_MM = 0.7
"""The colour a texel is judged by is its neighbourhood's, a Gaussian of this: a small face's photo has
pixels of about a millimetre on the skin (luciano.png, 400 pixels), and texel by texel the tests cut the
pixels' stairs along a patch's edge into the tile (teeth along the lower edge of his reddish under-eye
skin)."""
PATCH_WORK_SIZE = 1024
"""Largest grid on which :func:`_patch_colour` averages: a texel of 0.3 mm, finer than its Gaussian."""
BRIGHT_PLAUSIBLE = math.log(1.5)
BRIGHT_IMPLAUSIBLE = math.log(2.2)
"""Log brightness above the skin tone at which a texel's confidence starts to fall, and where it is gone.
Skin is seldom half as bright again as its own median; what is brighter is light the shading did not
explain (a highlight left over, a crease the mesh lacks, lit hair or background at a grazing silhouette),
and the fill would spread it as a glow. Darker texels are kept: stubble and moles are the person's."""
DARK_FRINGE_RAMP = (0.75, 0.6)
"""Brightness, a fraction of the skin tone's, at which a dark patch reaching the edge of the seen skin starts
to be left out, and below which it is left out in full (:func:`dark_fringe`). Measured on the shared photos:
woman_three_quarter's hair thinning over her cheek's edge, 0.5-0.65 of her tone in its hue; the skin at the
edge of frederick_douglass_1879's beard, about 0.65; woman_portrait's shadow at the jaw. A
patch as dark within the seen skin (a mole, stubble) is kept, and the fill spreads the skin around it."""
EYE_MARGIN_MM = 10.0
"""No dark fringe (:func:`dark_fringe`) and no glint (:func:`glints_off`) is looked for this close to the
eyes and brows: the skin around the eyes is unlike the cheeks and the forehead. It is often darker
(luciano's, smiling_woman's, with their lids and the skin below the eyes to 0.6 of their tones, were left
out as fringes), the lashes' and brows' hairs reach past their regions, and the fitted sockets shade it
deeper or shallower than the real ones (smiling_woman's skin between lids and brows is 1.5-2 times the
skin around it, and taken down to it, it was a dark smear under the brows)."""
EYE_MARGIN_FADE_MM = (EYE_MARGIN_MM, EYE_MARGIN_MM + 5.0)
"""Distances from the eyes and brows over which a dark fringe fades in: frederick_douglass_1879's dark skin
below one eye, a fringe past the margin and kept within it, ended in a straight line along it."""
FEATURE_EDGE_FADE_MM = 2.0
"""Distance from the features' outlines (eyes, brows, lips, nostrils) over which the skin's own tests fade in
(its colour's plausibility, the dark fringe): the features have tests of their own, and where a patch crossed
an outline the switch drew the outline, coarse and straight, into the map. astronaut's dark skin under her
nose, a fringe up to the upper lip's outline, ended there in a straight edge; laos's orange eye shadow,
kept in the brows and filled below them, along the brows' lower outline."""
BROW_LIGHTER_LOG = math.log(1.2)
"""In the brows, log brightness above the skin tone from which a texel whiter than the skin is judged by its
colour in full (:func:`_brow_plausibility`)."""
DETAIL_SOURCE_CONFIDENCE = 0.9
"""Texels seen at least this well are the source of the skin detail."""
DETAIL_MAX_SPREAD = 0.016
"""Most log-albedo spread per detail band (an octave between 0.15 cm and a texel) the fill takes from the
seen skin. Sharp colour photos of skin measure 0.001-0.016 per band at 1024 texels; more is the photo's
own texture (film grain, a halftone print, JPEG blocks) or wrinkles, which the fill would otherwise spread
over the whole head as blotches (grace_hopper's wrinkled skin measures 0.02 in the two coarsest bands, and at
a bound of 0.02 her fill showed as orange peel at 100 % zoom). The seen skin's own detail is scaled down to
it too: frederick_douglass_1879's measures 0.021-0.030 in its three coarsest bands, grace_hopper's 0.021
and 0.027 in its two coarsest."""
CHROMA_SIGMA = 0.02
"""Expected error of the cheeks' log chromaticity (per channel): noise, the white balance's leftovers."""
BLOOD_PRIOR = 0.02
BLOOD_PRIOR_LOG_SIGMA = 0.9
"""Prior on the dermal blood fraction of the cheeks: log-normal around 2 % with a factor of 2.5 for one
sigma (Jacques 1998 gives 0.2 % for bloodless skin; flushed cheeks reach several %)."""
TONE_AMBIGUITY_COST = 2.0
"""A reading of the cheeks at least :data:`TONE_AMBIGUITY_ITA` away from the fit's, whose cost
(:func:`_fit_chromaticity`) is within this of the fit's, makes the skin tone ambiguous (the manifold's fold:
light skin with much blood and dark skin with little have one chromaticity), unless the eyes or a scene
white weigh in (:data:`TONE_EVIDENCE_WEIGHT`)."""
TONE_AMBIGUITY_ITA = 30.0
"""Degrees of ITA between two readings that make them different skin tones (a class is 10-20 wide)."""
TONE_EVIDENCE_WEIGHT = 0.3
"""Weight in the scale (:func:`_calibrate`) from which the eyes or a scene white settle the tone."""
BRIGHTEST_SURFACE_RAMP = (0.1, 0.15)
"""Without the eyes, a reading of an ambiguous skin tone (the manifold's fold) is ruled out when the photo's
brightest surface, lit as the cheeks are, would have an albedo below the first of these under it, and not at
all above the second (:func:`_calibrate`). The two AFW flash photos of the bench set read as ITA -75 and -72
(their other reading +30 and +7, light skin): the brightest surface of either photo would then have had an
albedo of 0.07 and 0.09, darker than charcoal; on the shared photos and the rest of the bench set it is 0.35
or more under the reading taken."""
MANIFOLD_SCALE_LOG_SIGMA = 0.1
"""How well (natural log) one reading of the skin manifold fixes the cheeks' brightness: the known-answer
scenes' unambiguous readings land within 0.03-0.07 of the truth. With it the eyes' evidence is weighed
between two readings of the manifold's fold (:func:`_between_readings`)."""


@dataclass(frozen=True)
class AppearanceOptions:
    """Switches of :func:`estimate_appearance`; defaults are the tested ones.

    Attributes:
        refine_geometry: let the photometric fit refine pose and shape (else light and albedo only).
        remove_shine: take specular highlights off the face tile.
        back_tile_scale: resolution of the back-of-head tile relative to the face tile.
        skin_grain: lay the fine grain of the seen skin over what was filled (else the fill stays smooth:
            nothing in the maps but what the photo showed and the smooth completion).
        refit_without_hair: where much hair is found on the lower face, fit the light again without it
            (:func:`estimate_appearance`).
    """

    refine_geometry: bool = True
    remove_shine: bool = True
    back_tile_scale: float = BACK_TILE_SCALE
    skin_grain: bool = True
    refit_without_hair: bool = True


@dataclass(frozen=True)
class Appearance:
    """The skin of the person in a photo, in the ICT UV tiles, and the photo's lighting.

    Attributes:
        albedo_uv_linear: (S, S, 3) float32 diffuse albedo of the face tile (tile 0), linear sRGB in
            [0, 1], completed, with a gutter off the surface; row 0 at ``v = 1``
            (:mod:`facetwin.texture.uvmap`).
        albedo_back_uv_linear: (Sb, Sb, 3) float32 the same for the back-of-head tile (tile 1).
        texture_raw_srgb: (S, S, 3) float32 the photo unwrapped into the face tile, sRGB, 0 where the photo
            does not see the texel.
        confidence: (S, S) float32 in [0, 1], how much of each face texel's albedo is the photo's (step 2 of
            the module docstring): after occluders, implausible colours and, where the shine taken off is a
            large share of the colour, the shine.
        skin_seen: (S, S) float32 in [0, 1], how well the photo saw skin at each face texel: its confidence
            before the shine and the brightness tests, off the skin's hue left out (the re-render overlay
            covers the skin it shows).
        sh_light: (9, 3) float64 SH radiance coefficients, head frame, Ramamoorthi-Hanrahan order; with the
            albedo, ``albedo * E / pi * V`` is the photo's linear intensity, saturated by ``vivid``.
        skin: skin parameters of the mean cheek albedo: ``melanin``, ``haemoglobin`` (volume fractions),
            ``ita_deg``, ``cheek_albedo_linear``, ``manifold_log_residual``; ``tone_ambiguous`` (the cheeks'
            chromaticity reads as a very different tone too, nearly as well, and neither the eyes nor a
            white decided) with that reading's ITA, ``ita_other_reading_deg``; None values for monotone
            photos.
        fit: the photometrically refined fit.
        vertex_visibility_ratio: (V, 3) float32 light-weighted visibility of each vertex under ``sh_light``
            (:func:`facetwin.texture.delight.visibility_ratio`), for re-rendering.
        interreflection_albedo_linear: (3,) the albedo of the skin that lights its own creases
            (:func:`facetwin.texture.delight.interreflected`): the skin's diffuse shading uses the visibility
            ratio with it, the sheen without.
        sheen: the skin's broad shine under the key light (:class:`facetwin.texture.delight.Sheen`), in the
            photo's linear units (added to the render after its colour rendering), or None for none.
        monotone: the photo is grayscale or sepia (the albedo is gray).
        vivid: how vivid the photo's colour rendering is (:func:`_vividness`; 1: colorimetric): the photo's
            log chromaticity is the rendered light's times this (:func:`desaturate` by ``1 / vivid``).
        metrics: photometric fit quality (PSNR, SSIM on the skin mask), white balance, the share of the
            lower face found to be hair (``hair_fraction_beard_region``) and whether the light was fitted
            again without it (``refit_without_hair``), per-step seconds.
    """

    albedo_uv_linear: np.ndarray
    albedo_back_uv_linear: np.ndarray
    texture_raw_srgb: np.ndarray
    confidence: np.ndarray
    skin_seen: np.ndarray
    sh_light: np.ndarray
    skin: dict
    fit: Fit
    vertex_visibility_ratio: np.ndarray
    interreflection_albedo_linear: np.ndarray
    monotone: bool
    vivid: float
    sheen: Sheen | None = None
    metrics: dict = field(default_factory=dict)


def is_monotone(image_srgb: np.ndarray) -> bool:
    """Whether a photo is grayscale or toned (sepia, cyanotype): all its colour has one hue.

    On a 256 px copy, for the pixels that are not near black: the chromaticity's distance from gray (the
    saturation). A photo is monotone when 95 % of the pixels are within :data:`MONOTONE_SATURATION` of
    gray, or when 95 % of the saturated ones are within :data:`MONOTONE_OFF_HUE` of the half-line from gray
    along their mean hue (toned). Colour portraits spread their colours over several hues (skin, lips,
    eyes, clothes, background).

    Args:
        image_srgb: (H, W, 3) float sRGB in [0, 1].

    Returns:
        True for a grayscale or toned photo.
    """
    import cv2

    img = np.asarray(image_srgb, np.float32)
    scale = 256.0 / max(img.shape[:2])
    if scale < 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    px = img.reshape(-1, 3).astype(np.float64)
    total = px.sum(axis=1)
    ok = total > MONOTONE_MIN_SUM
    if ok.sum() < 100:
        return True
    c = px[ok] / total[ok, None] - 1.0 / 3.0
    x = (c[:, 0] - c[:, 1]) / math.sqrt(2.0)
    y = (c[:, 0] + c[:, 1] - 2.0 * c[:, 2]) / math.sqrt(6.0)
    sat = np.hypot(x, y)
    if np.quantile(sat, 0.95) < MONOTONE_SATURATION:
        return True
    coloured = sat >= MONOTONE_SATURATION
    x, y, sat = x[coloured], y[coloured], sat[coloured]
    mean = np.angle(np.exp(1j * np.arctan2(y, x)).mean())
    along = x * math.cos(mean) + y * math.sin(mean)
    across = np.abs(y * math.cos(mean) - x * math.sin(mean))
    # The opposite hue is as far from the half-line as from gray: orange skin on a teal ground is colour.
    off = np.where(along >= 0.0, across, sat)
    return bool(np.quantile(off, 0.95) < MONOTONE_OFF_HUE)


def occluder_mask(
    outlier: np.ndarray,
    oval: np.ndarray,
    face_area_px: float,
    feature: np.ndarray | None = None,
    shine: np.ndarray | None = None,
    eyes: tuple[np.ndarray, np.ndarray] | None = None,
    lines: np.ndarray | None = None,
) -> np.ndarray:
    """Which outlier pixels of the photometric fit are occluders rather than marks on the skin.

    Connected blobs of outliers (8-connected) are occluders when they touch the edge of the face oval (hair
    from above, hands from below), or when their area is at least :data:`OCCLUDER_MIN_AREA` of the face and
    they are neither the margin of a feature (:data:`FEATURE_MARGIN_SHARE`) nor mostly shine
    (:data:`SHINE_BLOB_SHARE` of their pixels, :func:`shine_like`); smaller enclosed ones (moles, pores,
    specks of shine) are not. A blob that reaches the margins of both eyes across the bridge between them
    is the frame of a pair of glasses, not a margin (lashes and lid shadow hug one eye; hair or a scarf may
    reach both eyes from the sides): then all within :data:`FRAME_RIM_FACE` of the eyes, the blobs that
    reach it and what the frame encloses are hidden.

    Args:
        outlier: (h, w) bool outlier pixels of the photometric fit.
        oval: (h, w) bool inside the face oval.
        face_area_px: the face's area in these pixels.
        feature: (h, w) bool pixels of the eyes, brows, lips and nostrils, or None (no margins).
        shine: (h, w) bool pixels whose colour is the skin's with white light added, or None.
        eyes: two (h, w) bool masks, the openings of the two eyes, or None (no glasses test).
        lines: (h, w) bool pixels on thin dark lines at the eyes (:func:`dark_lines_at_eyes`), or None: they
            join the outliers for the glasses test only (a soft frame is only partly an outlier).

    Returns:
        (h, w) bool occluder pixels, not yet widened.
    """
    import cv2
    from scipy.ndimage import binary_fill_holes, maximum

    n, labels, stats, _ = cv2.connectedComponentsWithStats(outlier.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(outlier, bool)
    rim = oval & ~cv2.erode(oval.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    touches = np.zeros(n, bool)
    touches[np.unique(labels[rim & outlier])] = True
    big = stats[:, cv2.CC_STAT_AREA] >= OCCLUDER_MIN_AREA * face_area_px
    r = max(round(FEATURE_MARGIN_FACE * math.sqrt(face_area_px)), 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)
    frame = np.zeros_like(outlier, bool)
    if eyes is not None and eyes[0].any() and eyes[1].any():
        joined = outlier if lines is None else outlier | lines
        n_j, lab_j = cv2.connectedComponents(joined.astype(np.uint8), connectivity=8)
        at = [np.bincount(lab_j[cv2.dilate(e.astype(np.uint8), disc).astype(bool)], minlength=n_j) > 0 for e in eyes]
        at[0][0] = at[1][0] = False
        crossing = np.zeros(n_j, bool)
        crossing[np.unique(lab_j[_between_eyes(eyes) & joined])] = True
        if (at[0] & at[1] & crossing).any():
            rim = max(round(FRAME_RIM_FACE * math.sqrt(face_area_px)), 1)
            zone = cv2.dilate(
                (eyes[0] | eyes[1]).astype(np.uint8),
                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2),
            ).astype(bool)
            in_zone = np.bincount(lab_j[zone], minlength=n_j) > 0
            in_zone[0] = False
            frame = zone | (in_zone | crossing)[lab_j]
    if feature is not None and feature.any():
        near = cv2.dilate(feature.astype(np.uint8), disc)
        share = np.bincount(labels[near.astype(bool)], minlength=n) / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
        # A margin is thin; a strand of hair or a frame along a brow is as close to it, but thicker.
        inside = cv2.distanceTransform(outlier.astype(np.uint8), cv2.DIST_L2, 3)
        thickness = 2.0 * np.asarray(maximum(inside, labels, np.arange(n)))
        big &= (share < FEATURE_MARGIN_SHARE) | (thickness > FEATURE_MARGIN_THICKNESS * math.sqrt(face_area_px))
    if shine is not None:
        # A highlight on the nose or forehead is skin the shine removal will treat, not something over it.
        shiny = np.bincount(labels[shine & outlier], minlength=n) / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
        big &= shiny < SHINE_BLOB_SHARE
    keep = big | touches
    keep[0] = False
    # What an occluder encloses (an eye inside a sunglass lens, lips inside a beard) is hidden too: those
    # pixels are features, never skin candidates, so they are not outliers themselves.
    return binary_fill_holes(keep[labels] | frame)


def _between_eyes(eyes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(h, w) bool: the bridge between two eye masks, where a glasses frame crosses from one eye to the
    other: between the eyes' inner ends along the line through their centres, and within
    :data:`BRIDGE_HALF_HEIGHT` of their distance from that line."""
    h, w = eyes[0].shape
    centres = [np.argwhere(e).mean(axis=0) for e in eyes]  # (row, col)
    axis = centres[1] - centres[0]
    dist = max(float(np.linalg.norm(axis)), 1e-6)
    axis /= dist
    rc = np.stack(np.mgrid[0:h, 0:w], axis=-1).astype(np.float64) - centres[0]
    along = rc @ axis
    across = np.abs(rc @ np.array([-axis[1], axis[0]]))
    inner0, inner1 = float(along[eyes[0]].max()), float(along[eyes[1]].min())
    return (along > inner0) & (along < inner1) & (across < BRIDGE_HALF_HEIGHT * dist)


def dark_lines_at_eyes(
    image_linear: np.ndarray, candidate: np.ndarray, eye_polys: list[np.ndarray], face_size_px: float
) -> np.ndarray:
    """Candidate skin pixels on thin dark lines around and between the eyes: where glasses frames run.

    A soft frame in a small photo is only a little darker than the skin, and much of it passes the
    photometric fit's residual test; a morphological black-hat (a closing of :data:`FRAME_MAX_THICKNESS`
    less the image, in log brightness) finds it as a line :data:`FRAME_DARKER` darker than its
    surroundings. Lid creases and lashes are such lines too: only when these pixels and the outliers join
    the two eyes across the bridge does :func:`occluder_mask` take them for a frame.

    Args:
        image_linear: (h, w, 3) the photo, linear.
        candidate: (h, w) bool pixels that could be skin.
        eye_polys: the two eyes' openings, (P, 2) float pixel positions each.
        face_size_px: the face's size in these pixels.

    Returns:
        (h, w) bool, within ``candidate``.
    """
    import cv2

    h, w = candidate.shape
    if candidate.sum() < 16:
        return np.zeros((h, w), bool)
    # Where a frame may run: within FRAME_RIM_FACE of the hull of the two eyes (the bridge included).
    zone = np.zeros((h, w), np.uint8)
    cv2.fillPoly(zone, [cv2.convexHull(np.round(np.concatenate(eye_polys) * 16).astype(np.int32))], 1, shift=4)
    rim = max(round(FRAME_RIM_FACE * face_size_px), 1)
    zone = cv2.dilate(zone, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2))
    lum = np.asarray(image_linear, np.float32).mean(axis=2)
    # Floored at a tenth of the skin's level: in deep shadow, noise is a large ratio.
    log = np.log(np.maximum(lum, 0.1 * float(np.median(lum[candidate]))))
    k = max(3, round(FRAME_MAX_THICKNESS * face_size_px) | 1)
    closing = cv2.morphologyEx(log, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return candidate & zone.astype(bool) & (closing - log > math.log(FRAME_DARKER))


def shine_like(observed_linear: np.ndarray, rendered_linear: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Pixels that look like the skin with white light added: a specular highlight the diffuse fit lacks.

    In natural-log colour, adding white to the skin's colour brightens it and takes away part ``alpha`` of
    its chromaticity ``q`` (the zero-mean log colour of the rendered skin): the residual's chromaticity is
    about ``-alpha q``. A pixel is shine-like when it is at least :data:`SHINE_MIN_GAIN` brighter than the
    model, ``alpha`` lies in :data:`SHINE_DESATURATION` and the residual is within :data:`SHINE_OFF_AXIS`
    of that line. Hair and glasses are darker; paint and lit background change the hue.

    Args:
        observed_linear: (h, w, 3) the photo, linear.
        rendered_linear: (h, w, 3) the photometric fit's rendering of it (linear).
        skin: (h, w) bool the fit's skin pixels (for ``q``).

    Returns:
        (h, w) bool.
    """
    lo = np.log(np.maximum(np.asarray(observed_linear, np.float32), 1e-4))
    lr = np.log(np.maximum(np.asarray(rendered_linear, np.float32), 1e-4))
    if not skin.any():
        return np.zeros(lo.shape[:2], bool)
    q = np.median((lr - lr.mean(axis=2, keepdims=True))[skin], axis=0)
    if float(q @ q) < 1e-6:
        return np.zeros(lo.shape[:2], bool)
    res = lo - lr
    gain = res.mean(axis=2)
    chroma = res - gain[..., None]
    alpha = -(chroma @ q) / float(q @ q)
    off_axis = np.linalg.norm(chroma + alpha[..., None] * q, axis=2)
    return (
        (gain > math.log(SHINE_MIN_GAIN))
        & (alpha > SHINE_DESATURATION[0])
        & (alpha < SHINE_DESATURATION[1])
        & (off_axis < SHINE_OFF_AXIS)
    )


def estimate_appearance(
    model: HeadModel,
    photo,
    face,
    fit: Fit,
    *,
    points: SurfacePoints | None = None,
    texture_size: int = 2048,
    options: AppearanceOptions = AppearanceOptions(),
) -> Appearance:
    """Diffuse albedo, lighting and skin parameters of the face in a photo (module docstring).

    Where hair covers more than :data:`HAIR_REFIT_FRACTION` of the lower face, the photometric fit took it
    for skin when it fitted the light and the albedo; the stage is run again with the hair's pixels left
    out of that fit (``metrics["refit_without_hair"]``). The second run keeps the first's pose and shape
    (the landmark term holds them; Douglass's albedo moved by 0.1 sRGB levels on average when it refined
    them again, at twice the cost) and fits the light and albedo again.

    Args:
        model: the head model.
        photo: the :class:`facetwin.io.Photo` (its ``image_srgb``, ``grayscale`` and ``chroma_subsampled``
            are used: a colour JPEG's colour blocks are smoothed before the tiles sample it,
            :func:`facetwin.io.deblock_chroma`).
        face: the :class:`facetwin.detect.Face` the fit belongs to (its 478 landmarks).
        fit: the landmark fit of that face.
        points: the 478 -> ICT correspondence the fit used; None loads the cached one.
        texture_size: S, texels per side of the face tile (64 to 8192; 2048 by default).
        options: switches.

    Returns:
        :class:`Appearance`.

    Raises:
        ValueError: bad texture size or image.
        FacetwinError: no skin pixel to fit.
    """
    from facetwin.frames import LUMINANCE_WEIGHTS, srgb_to_linear
    from facetwin.io import deblock_chroma
    from facetwin.texture.uvmap import MAX_SIZE

    if int(texture_size) != texture_size or not 64 <= texture_size <= MAX_SIZE:
        raise ValueError(f"texture_size: expected an integer in [64, {MAX_SIZE}], got {texture_size!r}")
    img_srgb = np.asarray(photo.image_srgb, np.float32)
    if img_srgb.ndim != 3 or img_srgb.shape[2] != 3:
        raise ValueError(f"photo.image_srgb: expected (H, W, 3), got {img_srgb.shape}")
    if points is None:
        from facetwin.fit.correspondence import landmark_correspondence

        points = landmark_correspondence(model)
    t0 = time.perf_counter()
    monotone = bool(photo.grayscale) or is_monotone(img_srgb)
    image_linear = srgb_to_linear(img_srgb)
    if monotone:
        gray = image_linear @ np.array(LUMINANCE_WEIGHTS, np.float32)
        image_linear = np.repeat(gray[..., None], 3, axis=2)
    unwrap_linear = image_linear
    if photo.chroma_subsampled and not monotone:
        unwrap_linear = srgb_to_linear(deblock_chroma(img_srgb))
    prepared = _Prepared(image_linear, unwrap_linear, monotone, _white_point(image_linear), time.perf_counter() - t0)
    first = _estimate(model, prepared, face, fit, points, int(texture_size), options, hair_found=None)
    if isinstance(first, Appearance):
        app = first
        app.metrics["refit_without_hair"] = False
    else:
        app = _estimate(model, prepared, face, first.fit, points, int(texture_size), options, hair_found=first)
        app.metrics["refit_without_hair"] = True
        # The geometry is the first pass's: the refit takes it as it is and fits the light and albedo again.
        app.metrics["photometric"].update(first.geometry_metrics)
        app.metrics["hair_fraction_beard_region"] = first.fraction
        app.metrics["seconds"]["first_pass"] = round(first.seconds, 3)
    app.metrics["jpeg_colour_smoothed"] = unwrap_linear is not image_linear
    return app


@dataclass(frozen=True)
class _Prepared:
    """The photo as every pass of :func:`_estimate` reads it."""

    image_linear: np.ndarray  # (H, W, 3) float32 linear; gray in all three channels when monotone
    # (H, W, 3) what the tiles sample: image_linear with a JPEG's colour blocks smoothed (deblock_chroma). The
    # rest reads image_linear: the whites of the eyes, small and set in lashes and lids, took the colour
    # around them from the filter, and they set the light's colour.
    unwrap_linear: np.ndarray
    monotone: bool  # grayscale or toned (:func:`is_monotone`)
    white_point: float  # :func:`_white_point` of image_linear
    seconds: float  # taken to prepare it (counted in each pass's "prepare")


@dataclass(frozen=True)
class _HairFound:
    """What a first pass of :func:`_estimate` found: hair over much of the lower face."""

    pixels: np.ndarray  # (h, w) bool, the photometric fit's crop
    visibility: np.ndarray  # (V, D) bool, the landmark fit's vertex visibility (the same in every pass)
    fit: Fit  # the first pass's photometric fit
    geometry_metrics: dict  # its refinement of the landmark fit's geometry (PhotometricFit.metrics' entries)
    fraction: float  # of the beard region
    seconds: float  # the first pass's


def _estimate(model, prepared, face, fit, points, size, options, hair_found) -> Appearance | _HairFound:
    """:func:`estimate_appearance`'s one pass: with ``hair_found`` None, it stops with :class:`_HairFound`
    right after the hair step where there is much hair; with what a first pass found, it leaves the hair's
    pixels out of the photometric fit and runs to the end."""
    import cv2

    from facetwin.fit.photometric import face_oval_px, landmark_polygon, refine_photometric
    from facetwin.frames import linear_to_srgb
    from facetwin.render.shade import vertex_normals
    from facetwin.texture.complete import (
        add_skin_detail,
        complete_texture,
        detail_scales,
        drop_islands,
        pad_texture,
        scale_detail,
        synthesize_detail,
    )
    from facetwin.texture.delight import (
        render_sheen,
        render_textured,
        shading_linear,
        sheen_radiance,
        skin_interreflected,
        visibility_ratio,
    )
    from facetwin.texture.hair import hair_cover
    from facetwin.texture.regions import face_regions
    from facetwin.texture.uvmap import mirror_texels, tile_cm_per_uv, uv_raster

    image_linear, monotone = prepared.image_linear, prepared.monotone
    seconds: dict[str, float] = {"prepare": prepared.seconds}

    t0 = time.perf_counter()
    phot = refine_photometric(
        model,
        image_linear,
        face.landmarks,
        fit,
        points,
        refine_geometry=options.refine_geometry and hair_found is None,
        monotone=monotone,
        fit_sheen=options.remove_shine,
        exclude=None if hair_found is None else hair_found.pixels,
        visibility=None if hair_found is None else hair_found.visibility,
    )
    seconds["photometric"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    new_fit = phot.fit
    verts = new_fit.vertices.astype(np.float64)
    cam = new_fit.camera
    normals = vertex_normals(verts, model.faces)
    sh = phot.sh_light.copy()
    ratio_v = visibility_ratio(normals, phot.visibility, phot.directions, sh)
    oval_poly = face_oval_px(face.landmarks)
    view = phot.view
    h, w = phot.skin_mask.shape
    oval_work = np.zeros((h, w), np.uint8)
    cv2.fillPoly(
        oval_work,
        [np.round(((oval_poly - view.origin_px) * view.scale - 0.5) * 256).astype(np.int32)],
        1,
        shift=8,
    )
    face_size_work = new_fit.face_size_px * view.scale
    eye_crop = [(landmark_polygon(face.landmarks, k) - view.origin_px) * view.scale - 0.5 for k in ("left_eye", "right_eye")]
    eye_work = [np.round(p * 256).astype(np.int32) for p in eye_crop]  # fixed point, 8 bits
    eye_masks = [cv2.fillPoly(np.zeros((h, w), np.uint8), [p], 1, shift=8).astype(bool) for p in eye_work]
    occl = occluder_mask(
        phot.outlier_mask,
        oval_work.astype(bool),
        face_size_work**2,
        feature=phot.feature_mask,
        shine=shine_like(phot.view.image_linear, phot.rendered_linear, phot.skin_mask),
        eyes=(eye_masks[0], eye_masks[1]),
        lines=dark_lines_at_eyes(view.image_linear, phot.candidate_mask, eye_crop, face_size_work),
    )
    # Features are never outliers (they are not skin candidates): what an occluder reaches into them (hair
    # over a brow, a frame over a lid) is hidden too, as far as OCCLUDER_INTO_FEATURES.
    r2 = max(round(OCCLUDER_INTO_FEATURES * face_size_work), 1)
    disc2 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r2 + 1, 2 * r2 + 1))
    occl = occl | (cv2.dilate(occl.astype(np.uint8), disc2).astype(bool) & phot.feature_mask)
    r = max(round(OCCLUDER_DILATE * face_size_work), 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    occl = cv2.dilate(occl.astype(np.uint8), disc)
    # Lashes, liner and lid creases ring the eye with outliers, which the hole filling and widening above
    # would spread over the whole opening; whether an eye is covered is judged from its sclera below.
    for pts in eye_work:
        cv2.fillPoly(occl, [pts], 0, shift=8)
    occl_soft = cv2.GaussianBlur(occl.astype(np.float32), (0, 0), max(r / 2.0, 0.5))
    # The whites of the eyes: the light's colour, and whether the eyes are seen at all (sunglasses).
    eyes = _sclera_samples(
        model, verts, normals, cam, image_linear, face.landmarks, sh, ratio_v, occl_soft, view
    )
    skin_ref = _grid_skin_brightness(model, phot.albedo_grid_linear)
    good, hidden_eyes = [], 0
    for poly, samples in eyes:
        if samples.shape[0] < SCLERA_MIN_PIXELS // 2:
            continue
        if (
            samples.shape[0] >= HIDDEN_EYE_MIN_PIXELS
            and _opening(poly) >= HIDDEN_EYE_MIN_OPENING
            and float(_sclera_colour(samples).mean()) < SCLERA_HIDDEN_BELOW_SKIN * skin_ref
        ):
            # No white where the eye is: something dark covers it. Hide the eye and its surroundings.
            hidden_eyes += 1
            centre = poly.mean(axis=0)
            grown = centre + HIDDEN_EYE_GROW * (poly - centre)
            pts = np.round(((grown - view.origin_px) * view.scale - 0.5) * 256).astype(np.int32)
            cv2.fillPoly(occl, [pts], 1, shift=8)
        else:
            good.append(samples)
    if hidden_eyes:
        occl_soft = cv2.GaussianBlur(occl.astype(np.float32), (0, 0), max(r / 2.0, 0.5))
    if good:
        allg = np.concatenate(good)
        sclera = {
            "pixels": int(allg.shape[0]),
            "albedo_linear": _sclera_colour(allg).tolist(),
            "hidden_eyes": hidden_eyes,
        }
    else:
        sclera = {"pixels": 0, "albedo_linear": None, "hidden_eyes": hidden_eyes}
    openings = [(landmark_polygon(face.landmarks, k), k != "mouth") for k in ("mouth", "left_eye", "right_eye")]
    capture = _capture(model, verts, cam, oval_poly, openings, new_fit.face_size_px, prepared.unwrap_linear)
    seconds["capture"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    back_size = max(64, round(size * options.back_tile_scale))
    shade_v = _seen_light_colours(shading_linear(normals, ratio_v, sh), normals, verts, cam)
    centre = -cam.R.T @ cam.t
    sheen_v = sheen_radiance(normals, verts, centre, phot.sheen, ratio_v)
    tiles = {}
    for tile, s in ((0, size), (1, back_size)):
        tiles[tile] = _unwrap(
            model,
            uv_raster(model, tile, s),
            verts,
            normals,
            shade_v,
            sheen_v,
            cam,
            prepared.unwrap_linear,
            capture,
            occl_soft,
            view,
        )
    seconds["unwrap"] = time.perf_counter() - t0

    # White balance and overall scale.
    t0 = time.perf_counter()
    reg = face_regions(model, size)
    face_tile = tiles[0]
    cheek = reg.cheeks & (face_tile.confidence > 0.5)
    if cheek.sum() < MIN_CHEEK_TEXELS:
        cheek = face_tile.confidence > 0.5
    cheek_raw = face_tile.raw[cheek]
    skin_level = float(np.nanmedian(cheek_raw.mean(axis=1))) if cheek_raw.size else math.nan
    if monotone:
        exposure = _exposure_albedo(prepared.white_point, cheek_raw)
        white = None
    else:
        exposure = None
        white = scene_white(image_linear, oval_poly, skin_level)
    facing = cam.R.T @ np.array([0.0, 0.0, -1.0])  # head frame, towards the camera
    gains, skin, wb = _calibrate(
        face_tile.albedo[cheek],
        sclera,
        monotone=monotone,
        cheek_exposure=exposure,
        white=white,
        white_shading=shading_linear(facing[None], None, sh)[0],
        white_over_skin=prepared.white_point / skin_level if skin_level > 0.0 and not monotone else None,
    )
    if monotone:
        wb["white_level_linear"] = round(prepared.white_point, 5)
    else:
        wb["scene_white"] = white
    for t in tiles.values():
        t.albedo = desaturate(t.albedo, wb["vivid"]) / gains
    sh = sh * gains[None, :]
    # Creases are lit by the skin around them too; the cheeks, open to the sky, give its albedo.
    bounce = np.zeros(3, np.float32)
    if cheek.any():
        bounce = np.clip(np.nan_to_num(np.nanmedian(face_tile.albedo[cheek], axis=0)), 0.0, INTERREFLECTION_MAX_ALBEDO)
    for t in tiles.values():
        _take_off_interreflection(model, t, ratio_v, bounce)
    seconds["calibrate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    spec_amount = 0.0
    skin_seen = face_tile.confidence.copy()
    if options.remove_shine and not monotone:
        face_tile.albedo, face_tile.confidence, spec_amount = _take_off_shine(
            face_tile.albedo, face_tile.confidence, reg
        )
        lip_sigma = LIP_GLINT_SIGMA_UV * size
        face_tile.albedo = glints_off(
            face_tile.albedo, face_tile.confidence, reg.lips, lip_sigma, LIP_GLINT_LOG, lip_sigma, yellower=LIP_GLINT_YELLOWER
        )
    seconds["shine"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # A beard or moustache is not skin, whatever its colour: its texels count as unseen.
    taken = face_tile.confidence > 0.0
    hair = hair_cover(
        face_tile.albedo,
        taken,
        reg.beard,
        size / (10.0 * tile_cm_per_uv(model, 0)),
        hidden=face_tile.seen & ~taken,
    )
    face_tile.confidence *= 1.0 - hair
    skin_seen *= 1.0 - hair
    hair_fraction = float(hair[reg.beard].mean())
    seconds["hair"] = time.perf_counter() - t0
    if hair_found is None and options.refit_without_hair and hair_fraction > HAIR_REFIT_FRACTION:
        return _HairFound(
            pixels=_hair_pixels(model, hair, new_fit, view, phot.skin_mask.shape),
            visibility=phot.visibility,
            fit=new_fit,
            geometry_metrics={
                k: _round(phot.metrics[k]) for k in ("landmark_loss_before", "landmark_loss_after", "face_vertex_shift_mm")
            },
            fraction=round(hair_fraction, 4),
            seconds=sum(seconds.values()),
        )

    # After the hair step: a beard's strands are lines too, and the hair step reads their texture.
    t0 = time.perf_counter()
    if options.remove_shine and (monotone or skin.get("melanin") is not None):
        _take_off_folds(model, face_tile, reg, None if monotone else skin)
    seconds["folds"] = time.perf_counter() - t0

    # Where the shading may belong a millimetre away the photo is not read as albedo. Only now: the hair
    # step judges texture on every texel it sees (frederick_douglass_1879's beard, with these left out
    # before it, was found on 38 % of its region instead of 45 %, and the light refitted without it differed).
    t0 = time.perf_counter()
    for tile, t in tiles.items():
        if tile == 0:
            t.confidence *= _steady(model, t) * _crease_shadows(
                model, t, reg.eyes | reg.brows | reg.lids, reg.lips, reg.mouth_corners
            )
        else:
            t.confidence *= _steady(model, t) * _crease_shadows(model, t)
    seconds["creases"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plain = (face_tile.confidence > 0.5) & ~reg.features
    tone = _skin_tone(face_tile.albedo, plain if plain.sum() >= MIN_CHEEK_TEXELS else cheek, monotone)
    # Colours far from the skin's chromaticity (a green fringe at a grazing silhouette, paint the
    # outlier test missed) are not taken as skin outside the features, nor anything far brighter than the
    # skin (lit background at the end of a brow, the white of the eye seen past the fitted lids).
    face_texels_per_mm = size / (10.0 * tile_cm_per_uv(model, 0))
    eye_distance = hair_distance(reg.eyes, reg.brows, 1.0)
    away_from_eyes = eye_distance >= EYE_MARGIN_MM * face_texels_per_mm
    feature_distance = cv2.distanceTransform((~reg.features).astype(np.uint8), cv2.DIST_L2, 5)
    for t in tiles.values():
        seen = t.confidence > 0.0
        texels_per_mm = t.raster.size / (10.0 * tile_cm_per_uv(model, t.raster.tile))
        judged = _patch_colour(t.albedo, seen, PLAUSIBILITY_SMOOTH_MM * texels_per_mm)
        chroma, bright = (x[0] for x in _plausibility(judged[seen][None], tone))
        plausible = chroma * bright
        if t is face_tile:
            feature = bright.copy()
            brows = reg.brows[seen]
            feature[brows] = _brow_plausibility(judged[seen][brows][None], tone)[0]
            # An implausible patch's rim is the same error, fainter (the rim light's streak on a nose wing).
            skin_map = np.ones(t.confidence.shape, np.float32)
            skin_map[seen] = np.where(reg.features[seen], 1.0, plausible)
            skin_rule = grow_implausible(skin_map)[seen]
            fade = _smoothstep(feature_distance[seen], 0.0, FEATURE_EDGE_FADE_MM * texels_per_mm)
            plausible = np.where(reg.features[seen], feature, feature + fade * (skin_rule - feature))
            # Far brighter than the skin is mostly shine, which the overlay covers; off its hue is not skin.
            skin_seen[seen] *= np.where(reg.features[seen], 1.0, chroma).astype(np.float32)
        t.confidence[seen] *= plausible.astype(np.float32)
        if t is face_tile:
            # Skin around the eyes is often darker than the cheeks (and the lashes' and brows' hairs reach
            # past their regions): darkness there is the person's.
            fringe = dark_fringe(judged, t.confidence > 0.0, t.raster.valid, tone, away_from_eyes & ~reg.features)
            # Faded in from the margin: cut at it, a dark patch crossing it kept a straight edge.
            fringe *= _smoothstep(eye_distance, *(m * face_texels_per_mm for m in EYE_MARGIN_FADE_MM))
            fringe *= _smoothstep(feature_distance, 0.0, FEATURE_EDGE_FADE_MM * face_texels_per_mm)
        else:
            fringe = dark_fringe(judged, t.confidence > 0.0, t.raster.valid, tone, None)
        t.confidence *= 1.0 - fringe
        if t is face_tile:
            skin_seen *= 1.0 - fringe
        t.confidence = drop_islands(t.confidence, math.ceil(ISLAND_MIN_MM2 * texels_per_mm**2))
    if options.remove_shine:
        # Last: the hair step reads a white beard's strands as hair by their brightness, and what is far
        # too bright to be skin is left out above rather than taken down and kept.
        face_tile.albedo = glints_off(
            face_tile.albedo,
            face_tile.confidence,
            away_from_eyes & ~reg.features & face_tile.raster.valid,
            SKIN_GLINT_SIGMA_UV * size,
            SKIN_GLINT_LOG,
            SKIN_GLINT_FADE_UV * size,
            detail=SKIN_GLINT_PATCH_UV * size,
        )
    out = {}
    measured = _detail_spread(model, face_tile, reg, monotone) if options.skin_grain else np.zeros((0, 3))
    spread = np.minimum(measured, DETAIL_MAX_SPREAD)
    for tile, t in tiles.items():
        s = t.raster.size
        albedo = np.clip(np.nan_to_num(t.albedo), 0.0, 1.0)
        if monotone:
            albedo = channel_mean(albedo, keepdims=True)
        # The same octaves on the surface; a coarser tile has fewer of them, the finest dropped.
        edges = detail_scales(s / tile_cm_per_uv(model, tile))
        nb = min(edges.size - 1, spread.shape[0])
        band_edges = np.concatenate([[0.0], edges[-nb:]]) if nb else None
        if nb:
            # Detail beyond skin's (grain, a print's mottle) is the photo's: the seen skin keeps as much as
            # the fill is given, so the two match.
            plain = t.confidence > 0.0
            if t is face_tile:
                plain &= ~reg.features
            gains = np.where(measured[-nb:] > spread[-nb:], spread[-nb:] / np.maximum(measured[-nb:], 1e-9), 1.0)
            albedo = scale_detail(albedo, plain, band_edges, gains[:, : albedo.shape[2]])
        if monotone:
            albedo = np.repeat(albedo, 3, axis=2)
        done = complete_texture(albedo, t.confidence, mirror_texels(model, tile, s), t.raster.valid, tone)
        filled = done.texture_linear
        if nb:
            detail = synthesize_detail(s, spread[-nb:], band_edges, tile)
            filled = add_skin_detail(filled, done.confidence, t.raster.valid, detail)
        tex = pad_texture(filled, t.raster.valid)
        if nb:
            # The gutter too: the map opened as an image showed the slit between hidden lips as a smooth hole.
            gutter = ~t.raster.valid[..., None]
            np.multiply(tex, np.exp(detail, where=gutter, out=np.ones_like(detail)), out=tex)
        tex = np.clip(tex, 0.0, 1.0)
        if s != (size if tile == 0 else back_size):
            tex = cv2.resize(tex, (s, s), interpolation=cv2.INTER_LINEAR)
        out[tile] = tex.astype(np.float32)
    if out[1].shape[0] != size:
        out[1] = cv2.resize(out[1], (size, size), interpolation=cv2.INTER_LINEAR)
    seconds["complete"] = time.perf_counter() - t0

    raw = np.zeros(face_tile.raw.shape, np.float32)
    raw[face_tile.seen] = linear_to_srgb(np.nan_to_num(face_tile.raw[face_tile.seen]))

    # Re-render with the final albedo and light, on the photometric fit's crop and skin mask.
    t0 = time.perf_counter()
    from facetwin.fit.photometric import psnr_masked, ssim_masked

    ratio_final = visibility_ratio(normals, phot.visibility, phot.directions, sh)
    radiance, _ = render_textured(
        model,
        verts,
        cam.R,
        cam.t,
        view.K,
        h,
        w,
        {0: out[0], 1: out[1]},
        sh,
        skin_interreflected(model, ratio_final, bounce),
        overlay_materials(),
    )
    shine = render_sheen(model, verts, cam.R, cam.t, view.K, h, w, phot.sheen, ratio_final)
    obs_srgb = linear_to_srgb(view.image_linear)
    ren_srgb = linear_to_srgb(desaturate(radiance, 1.0 / wb["vivid"]) + shine)
    rerender = {
        "psnr_db": psnr_masked(obs_srgb, ren_srgb, phot.skin_mask),
        "ssim": ssim_masked(obs_srgb, ren_srgb, phot.skin_mask),
        "psnr_candidates_db": psnr_masked(obs_srgb, ren_srgb, phot.candidate_mask),
        "pixels": int(phot.skin_mask.sum()),
    }
    seconds["rerender"] = time.perf_counter() - t0
    metrics = {
        "photometric": {k: _round(v) for k, v in phot.metrics.items()},
        "rerender": {k: _round(v) for k, v in rerender.items()},
        "white_balance": wb,
        "sclera": sclera,
        "shine_mean_linear": round(spec_amount, 5),
        "seen_fraction_face_tile": round(
            float((face_tile.confidence > 0.5).sum() / face_tile.raster.valid.sum()), 4
        ),
        "occluder_fraction": round(float(occl.astype(bool)[oval_work.astype(bool)].mean()), 4),
        "hair_fraction_beard_region": round(hair_fraction, 4),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    return Appearance(
        albedo_uv_linear=out[0],
        albedo_back_uv_linear=out[1],
        texture_raw_srgb=raw,
        confidence=face_tile.confidence.astype(np.float32),
        skin_seen=skin_seen.astype(np.float32),
        sh_light=sh,
        skin=skin,
        fit=new_fit,
        vertex_visibility_ratio=ratio_final,
        interreflection_albedo_linear=bounce.astype(np.float32),
        sheen=phot.sheen,
        monotone=monotone,
        vivid=float(wb["vivid"]),
        metrics=metrics,
    )


def overlay_materials() -> dict:
    """Linear albedo of the non-skin materials in re-renders: the sclera prior, the export's defaults."""
    from facetwin.export.gltf import material_look

    out = {
        name: material_look(name).colour_linear
        for name in ("M_IrisLeft", "M_IrisRight", "M_Teeth", "M_GumsTongue")
    }
    out["M_ScleraLeft"] = out["M_ScleraRight"] = SCLERA_ALBEDO_LINEAR
    return out


def render_appearance_overlay(model: HeadModel, appearance: Appearance, image_srgb: np.ndarray) -> np.ndarray:
    """The face's skin with its albedo under the fitted light, drawn over the photo it came from (in the
    photo's own colour rendering: saturated by ``appearance.vivid``).

    Args:
        model: the head model.
        appearance: the :class:`Appearance` of the photo.
        image_srgb: (H, W, 3) float sRGB in [0, 1], the photo (its size is the camera's).

    Returns:
        (H, W, 3) uint8 sRGB.
    """
    import cv2

    from facetwin.frames import linear_to_srgb
    from facetwin.render.preview import drawn_box
    from facetwin.texture.delight import render_sheen, render_textured, shading_linear, skin_interreflected

    img = np.asarray(image_srgb, np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image_srgb: expected (H, W, 3), got {img.shape}")
    cam = appearance.fit.camera
    h, w = img.shape[:2]
    out = img.copy()
    # Only the face's box is rendered: on a large photo the face is a small part of it.
    face = model.faces[model.material_faces(("M_Face",))]
    x0, y0, x1, y1 = drawn_box(cam.to_camera(appearance.fit.vertices), face, cam.K, w, h)
    if x1 <= x0 or y1 <= y0:
        return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    K = cam.K.copy()
    K[0, 2] -= x0
    K[1, 2] -= y0

    def render(tiles, light, ratio, materials=None, scale=1.0):
        k = K.copy()
        k[:2] *= scale
        size = (max(round((y1 - y0) * scale), 1), max(round((x1 - x0) * scale), 1))
        return render_textured(model, appearance.fit.vertices, cam.R, cam.t, k, *size, tiles, light, ratio, materials)

    radiance, material = render(
        {0: appearance.albedo_uv_linear, 1: appearance.albedo_back_uv_linear},
        appearance.sh_light,
        skin_interreflected(model, appearance.vertex_visibility_ratio, appearance.interreflection_albedo_linear),
        overlay_materials(),
    )
    # Where the photo saw skin, shine included, rendered as an albedo under a unit light; it is smooth, so
    # at most OVERLAY_MASK_PX across and enlarged (a large face renders twice).
    ambient = np.zeros((9, 3), np.float32)
    ambient[0] = 1.0
    unit_light = ambient / shading_linear(np.array([0.0, 0.0, 1.0]), None, ambient)
    confidence = np.repeat(appearance.skin_seen[..., None], 3, axis=2)
    scale = min(1.0, OVERLAY_MASK_PX / max(x1 - x0, y1 - y0))
    # Nothing else is seen skin: the default grey of the eyes and mouth would bleed into the enlarged mask.
    nothing = {n: (0.0, 0.0, 0.0) for n in model.material_names if n not in ("M_Face", "M_BackHead")}
    seen, _ = render({0: confidence, 1: np.zeros((2, 2, 3), np.float32)}, unit_light, None, nothing, scale)
    # The sheen is as smooth: rendered alone (no light, black albedo) at the same size.
    k_small = K.copy()
    k_small[:2] *= scale
    shine = render_sheen(
        model, appearance.fit.vertices, cam.R, cam.t, k_small, *seen.shape[:2], appearance.sheen,
        appearance.vertex_visibility_ratio,
    )
    if seen.shape[:2] != radiance.shape[:2]:
        seen = cv2.resize(seen, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        shine = cv2.resize(shine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    # The face's skin only, as far as the photo saw it: eyes, mouth, hair over the forehead and the back
    # of the head stay the photo's.
    drawn = material == model.material_names.index("M_Face")
    alpha = np.where(drawn, _smoothstep(seen[..., 0], *OVERLAY_CONFIDENCE_RAMP), 0.0)[..., None]
    crop = out[y0:y1, x0:x1]
    photo_colour = desaturate(radiance, 1.0 / appearance.vivid) + shine
    out[y0:y1, x0:x1] = crop * (1.0 - alpha) + linear_to_srgb(photo_colour) * alpha
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _round(v):
    return round(v, 5) if isinstance(v, float) else v


@dataclass
class _Tile:
    """Unwrapped tile (mutable while the stage runs)."""

    raster: object
    albedo: np.ndarray  # (S, S, 3) float32 delighted, NaN where not seen
    raw: np.ndarray  # (S, S, 3) float32 photo sample, linear, NaN where not seen
    confidence: np.ndarray  # (S, S) float32
    seen: np.ndarray  # (S, S) bool texel projects onto the photo and is visible
    shading: np.ndarray  # (S, S) float32 luminance of the shading the photo was divided by, 0 off the surface


def eye_white_reach(
    image_linear: np.ndarray, inside: np.ndarray, reach_px: float, face: np.ndarray | None = None
) -> np.ndarray:
    """Pixels past an eye's outline that show the white of the eye, where the detector's lid line runs
    within it.

    The brightest quarter of the outline's pixels is the white (the iris and the lashes are darker); the
    pixels of the face from ``reach_px`` to twice as far outside are the lids' skin. A pixel within
    ``reach_px`` of the outline is taken when it is at least :data:`EYE_WHITE_BRIGHTER_LOG` brighter than
    the lids' median and nearer the white's colour than theirs (log chromaticity), and is joined to the
    outline by such pixels. Nothing is taken where the white is not that much brighter than the lids (a
    closed eye, a shadowed one).

    Args:
        image_linear: (h, w, 3) linear photo.
        inside: (h, w) bool, the filled outline.
        reach_px: how far past the outline to look, pixels.
        face: (h, w) bool, the face's pixels (the detector's oval); None: all. A white headscarf beside
            an eye is neither its lids nor its white.

    Returns:
        (h, w) bool, the pixels taken (none of ``inside``).
    """
    import cv2

    from facetwin.texture.complete import mask_box

    img = np.asarray(image_linear, np.float32)
    inner = np.asarray(inside, bool)
    if img.ndim != 3 or img.shape[2] != 3 or inner.shape != img.shape[:2]:
        raise ValueError(f"image_linear (h, w, 3) and inside (h, w) disagree: {img.shape}, {inner.shape}")
    taken = np.zeros(inner.shape, bool)
    r = max(float(reach_px), 1.0)
    if inner.sum() < 4:
        return taken
    # Worked on the outline's box, grown by the ring: the photo beyond it is not read.
    box = mask_box(inner, math.ceil(2.0 * r) + 2)
    img, inner = img[box], inner[box]
    away = cv2.distanceTransform((~inner).astype(np.uint8), cv2.DIST_L2, 5)
    near = ~inner & (away <= r)
    ring = (away > r) & (away <= 2.0 * r)
    if face is not None:
        near &= np.asarray(face, bool)[box]
        ring &= np.asarray(face, bool)[box]
    log_img = np.log(np.maximum(img, 1e-4))
    level = log_img.mean(axis=2)
    chroma = log_img - level[..., None]
    inner_level = level[inner]
    white = inner & (level >= np.quantile(inner_level, 0.75))
    if not ring.any() or not white.any():
        return taken
    ring_level = float(np.median(level[ring]))
    white_chroma, ring_chroma = np.median(chroma[white], axis=0), np.median(chroma[ring], axis=0)
    if float(np.median(level[white])) < ring_level + EYE_WHITE_BRIGHTER_LOG:
        return taken
    like = (
        near
        & (level >= ring_level + EYE_WHITE_BRIGHTER_LOG)
        & (np.linalg.norm(chroma - white_chroma, axis=2) <= np.linalg.norm(chroma - ring_chroma, axis=2))
    )
    _, labels = cv2.connectedComponents((like | inner).astype(np.uint8), connectivity=8)
    joined = np.zeros(labels.max() + 1, bool)
    joined[np.unique(labels[inner])] = True
    joined[0] = False
    taken[box] = joined[labels] & ~inner
    return taken


@dataclass(frozen=True)
class _Capture:
    """The photo region around the head, rasterised for the visibility test."""

    depth: np.ndarray  # (h, w) float32 cm, inf off the mesh
    edge_px: np.ndarray  # (h, w) float32 distance (capture pixels) to the silhouette or the oval's edge
    depth_edge_px: np.ndarray  # (h, w) float32 distance (capture pixels) to an inner depth edge
    oval: np.ndarray  # (h, w) float32 1 inside the face oval
    opening: np.ndarray  # (h, w) float32 1 inside the mouth's or the eyes' opening (not skin)
    scale: float  # capture pixels per photo pixel
    origin: np.ndarray  # (2,) photo pixel of the capture's corner
    edge_ramp_px: float  # EDGE_RAMP_FACE in capture pixels
    depth_edge_ramp_px: float  # DEPTH_EDGE_RAMP_FACE in capture pixels


def _hair_pixels(model: HeadModel, hair: np.ndarray, fit: Fit, view, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) bool pixels of the photometric fit's crop (``view``, ``shape``) that the face-tile texels
    mostly covered by hair (``hair`` > 0.5, (S, S)) fall in, on the fitted mesh, widened by
    :data:`HAIR_PIXELS_GROW`."""
    import cv2

    from facetwin.texture.uvmap import texel_positions, uv_raster

    h, w = shape
    out = np.zeros((h, w), np.uint8)
    covered = hair > 0.5
    if not covered.any():
        return out.astype(bool)
    points = texel_positions(model, fit.vertices, uv_raster(model, 0, hair.shape[0]))[covered]
    points = points[np.isfinite(points).all(axis=1)]
    xy = np.round((fit.camera.project(points) - view.origin_px) * view.scale - 0.5).astype(np.int64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    out[xy[inside, 1], xy[inside, 0]] = 1
    r = HAIR_PIXELS_GROW
    return cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)).astype(bool)


def _capture(model, verts, cam, oval_poly, openings, face_size_px, image_linear) -> _Capture:
    """Rasterise the head over the face oval's box (at most :data:`CAPTURE_MAX_PX`) for visibility.
    ``openings`` are (outline in photo pixels, is an eye) pairs; an eye's is widened into the white of
    the eye that ``image_linear`` shows past it (:func:`eye_white_reach`)."""
    import cv2

    from facetwin.render.raster import rasterize
    from facetwin.texture.delight import occluding_faces

    lo = np.floor(oval_poly.min(axis=0)) - 4
    hi = np.ceil(oval_poly.max(axis=0)) + 4
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [cam.width, cam.height])
    side = max(float((hi - lo).max()), 1.0)
    scale = min(1.0, CAPTURE_MAX_PX / side)
    w = max(int(np.ceil((hi[0] - lo[0]) * scale)), 1)
    h = max(int(np.ceil((hi[1] - lo[1]) * scale)), 1)
    K = cam.K.copy()
    K[:2] *= scale
    K[0, 2] -= lo[0] * scale
    K[1, 2] -= lo[1] * scale
    vc = cam.to_camera(verts)
    raster = rasterize(vc, model.faces[occluding_faces(model)], K, h, w)
    depth = raster.depth
    covered = raster.covered
    d = np.where(covered, depth, np.float32(1e6))
    jump = np.zeros((h, w), bool)
    dx = np.abs(np.diff(d, axis=1)) > DEPTH_EDGE_CM
    dy = np.abs(np.diff(d, axis=0)) > DEPTH_EDGE_CM
    jump[:, 1:] |= dx
    jump[:, :-1] |= dx
    jump[1:, :] |= dy
    jump[:-1, :] |= dy
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(((oval_poly - lo) * scale - 0.5) * 256).astype(np.int32)], 1, shift=8)
    x0, y0 = int(lo[0]), int(lo[1])
    crop = np.asarray(image_linear, np.float32)[y0 : y0 + math.ceil(h / scale), x0 : x0 + math.ceil(w / scale)]
    crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
    reach = max(EYE_WHITE_REACH_FACE * face_size_px * scale, 1.0)
    opening = np.zeros((h, w), np.uint8)
    for poly, is_eye in openings:
        inside = np.zeros((h, w), np.uint8)
        cv2.fillPoly(inside, [np.round(((poly - lo) * scale - 0.5) * 256).astype(np.int32)], 1, shift=8)
        opening |= inside
        if is_eye:
            opening |= eye_white_reach(crop, inside.astype(bool), reach, oval.astype(bool)).astype(np.uint8)
    grow = max(round(OPENING_GROW_FACE * face_size_px * scale), 1)
    opening = cv2.dilate(opening, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    opening = cv2.GaussianBlur(opening.astype(np.float32), (0, 0), grow / 2.0)
    dist = cv2.distanceTransform((covered & oval.astype(bool)).astype(np.uint8), cv2.DIST_L2, 3)
    dist_jump = cv2.distanceTransform((~jump).astype(np.uint8), cv2.DIST_L2, 3)
    return _Capture(
        depth=depth,
        edge_px=dist,
        depth_edge_px=dist_jump,
        oval=oval.astype(np.float32),
        opening=opening,
        scale=scale,
        origin=lo,
        edge_ramp_px=max(EDGE_RAMP_FACE * face_size_px * scale, 1.0),
        depth_edge_ramp_px=max(DEPTH_EDGE_RAMP_FACE * face_size_px * scale, 1.0),
    )


@numba.njit(cache=True)
def _bilinear(img, x, y, c):  # pragma: no cover - compiled
    """Bilinear sample of channel ``c`` of (h, w, C) ``img`` at pixel-centre coordinates (x, y); the border
    pixel continues outside."""
    h, w = img.shape[0], img.shape[1]
    x = min(max(x, 0.0), w - 1.0)
    y = min(max(y, 0.0), h - 1.0)
    j0 = min(int(x), w - 2) if w > 1 else 0
    i0 = min(int(y), h - 2) if h > 1 else 0
    tx = x - j0
    ty = y - i0
    j1 = min(j0 + 1, w - 1)
    i1 = min(i0 + 1, h - 1)
    top = (1.0 - tx) * img[i0, j0, c] + tx * img[i0, j1, c]
    bot = (1.0 - tx) * img[i1, j0, c] + tx * img[i1, j1, c]
    return (1.0 - ty) * top + ty * bot


@numba.njit(cache=True)
def _ramp(x):  # pragma: no cover - compiled
    """Smoothstep from 0 at x <= 0 to 1 at x >= 1."""
    t = min(max(x, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@numba.njit(cache=True, parallel=True)
def _unwrap_kernel(
    idx,
    tri_id,
    bary,
    faces,
    verts,
    normals,
    shade_v,
    sheen_v,
    rot,
    trans,
    kmat,
    image,
    depth,
    maps,
    cap_origin,
    cap_scale,
    occl,
    view_origin,
    view_scale,
    edge_ramp,
    depth_edge_ramp,
    cos_lo,
    cos_hi,
    tol_cm,
    tol_px,
    sheen_full,
    sheen_lost,
    albedo,
    raw,
    conf,
    seen,
    lum,
):  # pragma: no cover - compiled
    """Everything of :func:`_unwrap` per valid texel ``idx[k]`` (flat index); see the module docstring.

    ``maps`` (h, w, 4) holds the capture's edge distance, inner depth-edge distance, oval and opening;
    ``sheen_v`` (V, 3) the sheen's radiance per vertex, taken off the photo before dividing by the shading;
    the confidence falls with its share of the photo's colour from ``sheen_full`` to ``sheen_lost``
    (:data:`SHEEN_OF_PHOTO`).
    Writes ``albedo``, ``raw`` (S*S, 3), ``conf``, ``seen`` (S*S) and ``lum`` (n,) the texel's shading.
    """
    H, W = image.shape[0], image.shape[1]
    ch, cw = depth.shape[0], depth.shape[1]
    for k in numba.prange(idx.shape[0]):
        q = idx[k]
        t = tri_id[q]
        w0, w1, w2 = bary[q, 0], bary[q, 1], bary[q, 2]
        a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
        p0 = w0 * verts[a, 0] + w1 * verts[b, 0] + w2 * verts[c, 0]
        p1 = w0 * verts[a, 1] + w1 * verts[b, 1] + w2 * verts[c, 1]
        p2 = w0 * verts[a, 2] + w1 * verts[b, 2] + w2 * verts[c, 2]
        x = rot[0, 0] * p0 + rot[0, 1] * p1 + rot[0, 2] * p2 + trans[0]
        y = rot[1, 0] * p0 + rot[1, 1] * p1 + rot[1, 2] * p2 + trans[1]
        z = rot[2, 0] * p0 + rot[2, 1] * p1 + rot[2, 2] * p2 + trans[2]
        s0 = w0 * shade_v[a, 0] + w1 * shade_v[b, 0] + w2 * shade_v[c, 0]
        s1 = w0 * shade_v[a, 1] + w1 * shade_v[b, 1] + w2 * shade_v[c, 1]
        s2 = w0 * shade_v[a, 2] + w1 * shade_v[b, 2] + w2 * shade_v[c, 2]
        lum[k] = (s0 + s1 + s2) / 3.0
        if z <= 1.0:
            continue
        px = kmat[0, 0] * x / z + kmat[0, 1] * y / z + kmat[0, 2]
        py = kmat[1, 1] * y / z + kmat[1, 2]
        if px < 0.5 or px > W - 0.5 or py < 0.5 or py > H - 0.5:
            continue
        cx = (px - cap_origin[0]) * cap_scale - 0.5
        cy = (py - cap_origin[1]) * cap_scale - 0.5
        if cx < -0.5 or cx > cw - 0.5 or cy < -0.5 or cy > ch - 0.5:
            continue
        n0 = w0 * normals[a, 0] + w1 * normals[b, 0] + w2 * normals[c, 0]
        n1 = w0 * normals[a, 1] + w1 * normals[b, 1] + w2 * normals[c, 1]
        n2 = w0 * normals[a, 2] + w1 * normals[b, 2] + w2 * normals[c, 2]
        c0 = rot[0, 0] * n0 + rot[0, 1] * n1 + rot[0, 2] * n2
        c1 = rot[1, 0] * n0 + rot[1, 1] * n1 + rot[1, 2] * n2
        c2 = rot[2, 0] * n0 + rot[2, 1] * n1 + rot[2, 2] * n2
        norm = max(np.sqrt(c0 * c0 + c1 * c1 + c2 * c2) * np.sqrt(x * x + y * y + z * z), 1e-12)
        vcos = -(c0 * x + c1 * y + c2 * z) / norm
        zi = min(max(round(cy), 0), ch - 1)
        zj = min(max(round(cx), 0), cw - 1)
        zbuf = depth[zi, zj]
        footprint = z / (kmat[0, 0] * cap_scale)
        tol = tol_cm + tol_px * footprint / max(vcos, 0.1)
        if not (zbuf < 1e30 and z <= zbuf + tol):
            continue
        seen[q] = True
        f = _ramp((vcos - cos_lo) / (cos_hi - cos_lo))
        f *= _ramp((_bilinear(maps, cx, cy, 0) - 1.0) / edge_ramp)  # 1: the boundary pixel itself
        f *= _ramp(_bilinear(maps, cx, cy, 1) / depth_edge_ramp)
        f *= min(max(_bilinear(maps, cx, cy, 2), 0.0), 1.0)
        f *= min(max(1.0 - _bilinear(maps, cx, cy, 3), 0.0), 1.0)
        wx = (px - view_origin[0]) * view_scale - 0.5
        wy = (py - view_origin[1]) * view_scale - 0.5
        f *= min(max(1.0 - _bilinear(occl, wx, wy, 0), 0.0), 1.0)
        conf[q] = f
        for d in range(3):
            v = _bilinear(image, px - 0.5, py - 0.5, d)
            raw[q, d] = v
        sheen_sum = 0.0
        for d in range(3):
            sheen = w0 * sheen_v[a, d] + w1 * sheen_v[b, d] + w2 * sheen_v[c, d]
            shade = s0 if d == 0 else (s1 if d == 1 else s2)
            albedo[q, d] = max(raw[q, d] - sheen, 0.0) / max(shade, 1e-12)
            sheen_sum += sheen
        if sheen_sum > 0.0:
            share = sheen_sum / max(raw[q, 0] + raw[q, 1] + raw[q, 2], 1e-12)
            conf[q] *= _ramp((sheen_lost - share) / (sheen_lost - sheen_full))


def _seen_light_colours(shading: np.ndarray, normals: np.ndarray, verts: np.ndarray, cam) -> np.ndarray:
    """The shading with its colour held to the range it has where the photo constrained the light.

    The SH light may change colour with direction (a warm key, a blue fill), but the photometric fit only
    sees the normals that face the camera: towards grazing normals its colour is extrapolated, and divided
    out it tints the cheeks' sides green or magenta. Each vertex's shading keeps its brightness (mean log)
    while its log chromaticity is clipped, per channel, to the :data:`SEEN_LIGHT_QUANTILES` of the lit
    vertices facing the camera (cosine above :data:`SEEN_LIGHT_MIN_COS`, shading at least
    :data:`SEEN_LIGHT_MIN_LEVEL` of their median).

    Args:
        shading: (V, 3) linear shading per vertex.
        normals: (V, 3) unit normals, head frame.
        verts: (V, 3) positions, head frame (cm).
        cam: the camera (``R``, ``t``).

    Returns:
        (V, 3) shading.
    """
    shade = np.maximum(np.asarray(shading, np.float64), 1e-12)
    log = np.log(shade)
    level = log.mean(axis=1, keepdims=True)
    chroma = log - level
    cam_pos = -cam.R.T @ cam.t
    view = cam_pos[None, :] - verts
    cos = (normals * view).sum(axis=1) / np.maximum(np.linalg.norm(view, axis=1), 1e-12)
    facing = cos > SEEN_LIGHT_MIN_COS
    if facing.sum() < 3:
        return shade
    # Lit ones only: in shade the channels' small differences are large ratios.
    facing &= level[:, 0] > float(np.median(level[facing, 0])) + math.log(SEEN_LIGHT_MIN_LEVEL)
    lo, hi = np.quantile(chroma[facing], SEEN_LIGHT_QUANTILES, axis=0)
    held = np.clip(chroma, lo, hi)
    return np.exp(level + held - held.mean(axis=1, keepdims=True))


def _unwrap(model, uvr, verts, normals, shade_v, sheen_v, cam, image_linear, capture, occl_soft, view) -> _Tile:
    """Sample the photo into one tile with confidence, take off the sheen and divide by the shading (module
    docstring).

    The shading ``shade_v`` (V, 3) is given at the vertices (exact SH irradiance of the vertex normal, times
    the vertex's visibility ratio, its colour held by :func:`_seen_light_colours`) and interpolated across
    each triangle: second-order SH light varies far more slowly than a 3 mm triangle. So is the sheen's
    radiance ``sheen_v`` (V, 3): its lobe is some 2 cm wide on the cheek. Where it is a large share of the
    texel's colour the diffuse left is a guess (the fitted nose tip is not quite where the real one catches
    the light), and the texel's confidence falls (:data:`SHEEN_OF_PHOTO`). The tile keeps the shading's
    luminance for :func:`_steady` and :func:`_crease_shadows`.
    """
    from facetwin.texture.delight import SHADING_FLOOR

    s = uvr.size
    idx = np.flatnonzero(uvr.valid.ravel())
    shade_v = np.asarray(shade_v, np.float64)
    albedo = np.full((s * s, 3), np.nan, np.float32)
    raw = np.full((s * s, 3), np.nan, np.float32)
    conf = np.zeros(s * s, np.float32)
    seen = np.zeros(s * s, bool)
    lum = np.zeros(idx.size, np.float64)
    depth = np.where(np.isfinite(capture.depth), capture.depth, np.float32(1e38)).astype(np.float32)
    maps = np.ascontiguousarray(
        np.stack([capture.edge_px, capture.depth_edge_px, capture.oval, capture.opening], axis=2), np.float32
    )
    _unwrap_kernel(
        idx,
        uvr.tri_id.ravel(),
        uvr.bary.reshape(-1, 3),
        model.faces,
        np.ascontiguousarray(verts, np.float64),
        np.ascontiguousarray(normals, np.float64),
        shade_v,
        np.ascontiguousarray(sheen_v, np.float64),
        np.ascontiguousarray(cam.R, np.float64),
        np.ascontiguousarray(cam.t, np.float64),
        np.ascontiguousarray(cam.K, np.float64),
        np.ascontiguousarray(image_linear, np.float32),
        depth,
        maps,
        np.asarray(capture.origin, np.float64),
        float(capture.scale),
        np.ascontiguousarray(occl_soft, np.float32)[..., None],
        np.asarray(view.origin_px, np.float64),
        float(view.scale),
        float(capture.edge_ramp_px),
        float(capture.depth_edge_ramp_px),
        VIEW_COS_RAMP[0],
        VIEW_COS_RAMP[1],
        DEPTH_TOLERANCE_CM,
        DEPTH_TOLERANCE_PX,
        SHEEN_OF_PHOTO[0],
        SHEEN_OF_PHOTO[1],
        albedo,
        raw,
        conf,
        seen,
        lum,
    )
    # Texels in deep shadow: their albedo is noise over almost nothing.
    good = conf[idx] > 0.5
    ref = float(np.median(lum[good])) if good.any() else 1.0
    ref = max(ref, 1e-9)
    conf[idx] *= _smoothstep(lum / ref, SHADING_MIN_FRACTION, 2.0 * SHADING_MIN_FRACTION)
    shading = np.zeros(s * s, np.float32)
    shading[idx] = lum
    dark = np.zeros(s * s, bool)
    dark[idx] = lum < SHADING_FLOOR * ref
    albedo[dark] = np.nan
    return _Tile(
        raster=uvr,
        albedo=albedo.reshape(s, s, 3),
        raw=raw.reshape(s, s, 3),
        confidence=np.clip(conf, 0.0, 1.0).reshape(s, s),
        seen=seen.reshape(s, s),
        shading=shading.reshape(s, s),
    )


def _steady(model, t: _Tile) -> np.ndarray:
    """(S, S) float32 in [0, 1]: how little the shading of the tile ``t`` changes within a slip
    (:func:`_shading_slip`, :data:`SHADING_SLIP_RAMP`); 1 off the surface. Taken only once the hair is
    found (the first pass of a bearded face stops before it); tiles larger than :data:`CREASE_WORK_SIZE`
    are judged at that size and the result enlarged (a millimetre is 7 texels there)."""
    import cv2

    from facetwin.texture.complete import weighted_blur

    size = t.raster.size
    grid, shading, valid = _work_shading(t)
    idx = np.flatnonzero(valid.ravel())
    steady = np.ones(grid.size * grid.size, np.float32)
    slip = _shading_slip(model, grid, idx, shading.ravel()[idx].astype(np.float64))
    steady[idx] = 1.0 - _smoothstep(slip, *SHADING_SLIP_RAMP)
    # The slip is a millimetre either way, and so is where the confidence falls: without the blur the
    # disc's plateaus cut small holes with hard edges, which a 4096 fill showed as blobs at the mouth's corners.
    steady = weighted_blur(steady.reshape(grid.size, grid.size), valid, 0.5 * _slip_texels(model, grid))
    if grid.size < size:
        steady = cv2.resize(steady, (size, size), interpolation=cv2.INTER_LINEAR)
    return steady


def _work_shading(t: _Tile) -> tuple[_Grid, np.ndarray, np.ndarray]:
    """The tile ``t``'s grid at :data:`CREASE_WORK_SIZE` at most, its shading there (the mean over the
    surface within each working texel) and the working texels on the surface."""
    import cv2

    size, work = t.raster.size, min(t.raster.size, CREASE_WORK_SIZE)
    grid = _Grid(size=work, tile=t.raster.tile)
    if work == size:
        return grid, t.shading, t.raster.valid
    on = cv2.resize(t.raster.valid.astype(np.float32), (work, work), interpolation=cv2.INTER_AREA)
    shading = cv2.resize(t.shading, (work, work), interpolation=cv2.INTER_AREA) / np.maximum(on, 1e-6)
    return grid, shading, on > 0.5


def _crease_shadows(model, t: _Tile, exempt=None, own=None, corners=None) -> np.ndarray:
    """(S, S) float32 in [0, 1]: 0 on texels of the tile ``t`` that hold a crease's shading seen beside the
    fitted crease, 1 elsewhere: near a crease (the shading changes by :data:`SHADING_SLIP_RAMP` within
    :data:`CREASE_REACH_MM`) and far darker or brighter than the skin around them
    (:data:`CREASE_DARKER_RAMP`, :data:`CREASE_BRIGHTER_RAMP`). Tiles larger than :data:`CREASE_WORK_SIZE`
    are judged at that size and the result enlarged.

    Args:
        model: the head model.
        t: the tile.
        exempt: (S, S) bool, or None: texels left as they are (eyes, brows, and the lids where eye shadow is
            worn). The nostrils' region is not among them: its openings are shadow.
        own: (S, S) bool, or None: a feature of its own colour (the lips), measured against itself and only
            for spots darker than it (the shadow in a smiling mouth's corners): the skin of its margin is
            brighter than it by nature.
        corners: (S, S) bool, or None: the parts of ``own`` where it meets itself in a recess the model
            lacks (the lips' corners), whose shadow can fill the whole neighbourhood a texel is measured
            against: there the feature's median away from them counts too, where enough of it is seen.
    """
    import cv2

    from facetwin.frames import LUMINANCE_WEIGHTS

    luma = np.nan_to_num(t.albedo) @ np.array(LUMINANCE_WEIGHTS, np.float32)
    log = np.log(np.maximum(luma, 1e-4))
    weight = np.where(np.isfinite(t.albedo[..., 0]), t.confidence, 0.0).astype(np.float32)
    size = log.shape[0]
    grid, shading, valid = _work_shading(t)
    work, masks = grid.size, (exempt, own, corners)
    if work < size:
        # The spots are a millimetre across, 10 texels at the working size: judged there and enlarged.
        def shrink(x):
            return cv2.resize(np.ascontiguousarray(x, np.float32), (work, work), interpolation=cv2.INTER_AREA)

        log = shrink(log * weight) / np.maximum(shrink(weight), 1e-6)
        weight = shrink(weight)
        masks = tuple(None if m is None else shrink(m) > 0.5 for m in masks)
    idx = np.flatnonzero(valid.ravel())
    near = np.zeros(work * work, np.float32)
    slip = _shading_slip(model, grid, idx, shading.ravel()[idx], CREASE_REACH_MM)
    near[idx] = _smoothstep(slip, *SHADING_SLIP_RAMP)
    keep = _crease_spots(log, weight, near.reshape(work, work), *masks, _slip_texels(model, grid))
    if work < size:
        keep = cv2.resize(keep, (size, size), interpolation=cv2.INTER_LINEAR)
    # A spot's rim reaches into the exempt texels too; they are left as they are.
    if exempt is not None:
        keep[exempt] = 1.0
    return keep


class _Grid(NamedTuple):
    """A tile's texel grid at some size: what :func:`_slip_texels` and :func:`_shading_slip` read of a
    :class:`facetwin.texture.uvmap.UVRaster`."""

    size: int
    tile: int


def _crease_spots(log, weight, near, exempt, own, corners, slip_texels: float) -> np.ndarray:
    """:func:`_crease_shadows` on one grid, before the exempt texels are set back to 1: ``log`` (S, S) log
    luminance, ``weight`` its confidence, ``near`` in [0, 1] how near a crease each texel is, ``exempt``,
    ``own`` and ``corners`` as there, ``slip_texels`` :data:`SHADING_SLIP_MM` in texels."""
    import cv2

    from facetwin.texture.complete import weighted_blur

    per_mm = slip_texels / SHADING_SLIP_MM
    sigma = CREASE_REFERENCE_MM * per_mm
    apart = np.zeros(weight.shape, bool)
    for m in (exempt, own):
        if m is not None:
            apart |= m
    # The skin around a texel, without the features: beside the lips, skin would read bright.
    darker = weighted_blur(log, np.where(apart, 0.0, weight), sigma) - log
    spot = np.maximum(_smoothstep(darker, *CREASE_DARKER_RAMP), _smoothstep(-darker, *CREASE_BRIGHTER_RAMP))
    if own is not None:
        around = weighted_blur(log, np.where(own, weight, 0.0), sigma)
        if corners is not None:
            # smiling_woman's mouth corners were dark over 3-4 mm, lips and skin alike: measured against
            # themselves, they passed and the fill spread them into dark blobs at both corners.
            rest = own & ~corners & (weight > 0.5)
            if rest.sum() >= corners.sum() > 0:
                around = np.where(corners, np.maximum(around, float(np.median(log[rest]))), around)
        spot = np.where(own, _smoothstep(around - log, *CREASE_DARKER_RAMP), spot)
    keep = (1.0 - spot * near).astype(np.float32)
    # Exempt texels are no spots, so their rims do not spread onto the skin.
    if exempt is not None:
        keep[exempt] = 1.0
    # The spot's rim is the same error, fainter: half a slip of it goes too.
    r = max(round(0.5 * SHADING_SLIP_MM * per_mm), 1)
    return cv2.erode(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def _slip_texels(model, uvr) -> float:
    """:data:`SHADING_SLIP_MM` in texels of the tile (at its mean scale)."""
    from facetwin.texture.uvmap import tile_cm_per_uv

    return SHADING_SLIP_MM * uvr.size / (10.0 * tile_cm_per_uv(model, uvr.tile))


def _shading_slip(model, uvr, idx, lum, radius_mm: float = SHADING_SLIP_MM) -> np.ndarray:
    """(n,) for the tile's texels ``idx`` with shading ``lum``: the largest log change of the shading within
    ``radius_mm`` on the tile (a disc of the tile's mean scale), up or down.

    Discs of 14 texels' radius or more are taken on blocks of the tile (the block's extremes, a disc of
    blocks, the radius 7-13 blocks), so the cost does not grow with the radius; the disc is then up to a
    block wider than asked.
    """
    import cv2

    s = uvr.size
    log_s = np.log(np.maximum(lum, 1e-9)).astype(np.float32)
    r = max(round(radius_mm * _slip_texels(model, uvr) / SHADING_SLIP_MM), 1)
    # Texels off the surface neither raise the maximum nor lower the minimum.
    low = np.full(s * s, -1e9, np.float32)
    high = np.full(s * s, 1e9, np.float32)
    low[idx] = high[idx] = log_s
    low, high = low.reshape(s, s), high.reshape(s, s)
    k = max(r // 7, 1)
    if k > 1:
        n = -(-s // k)
        pad = ((0, n * k - s), (0, n * k - s))
        low = np.pad(low, pad, constant_values=-1e9).reshape(n, k, n, k).max(axis=(1, 3))
        high = np.pad(high, pad, constant_values=1e9).reshape(n, k, n, k).min(axis=(1, 3))
        r = -(-r // k)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    top, bottom = cv2.dilate(low, disc), cv2.erode(high, disc)
    at = idx
    if k > 1:
        rows, cols = np.divmod(idx, s)
        at = (rows // k) * top.shape[1] + cols // k
    return np.maximum(top.ravel()[at] - log_s, log_s - bottom.ravel()[at])


def _sclera_samples(
    model, verts, normals, cam, image_linear, landmarks, sh, ratio_v, occl_soft, view
) -> list:
    """Delighted colours of the visible sclera of each eye.

    Sclera pixels: the sclera meshes' pixels inside the detector's eye contour, away from the iris and from
    occluders (:func:`occluder_mask`), lit at least :data:`SCLERA_MIN_SHADING` as much as a surface facing
    the camera.

    Returns:
        one ``(polygon (P, 2) photo pixels, samples (N, 3) linear albedo in the light's units)`` per eye.
    """
    import cv2
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LEFT_EYE, FACEMESH_RIGHT_EYE

    from facetwin.fit.photometric import _loop
    from facetwin.render.raster import rasterize
    from facetwin.texture.delight import occluding_faces, shading_linear

    lm = np.asarray(landmarks, np.float64)[:, :2]
    facing = cam.R.T @ np.array([0.0, 0.0, -1.0])  # head frame, towards the camera
    least = SCLERA_MIN_SHADING * float(shading_linear(facing[None], None, sh)[0].mean())
    names = ("M_ScleraLeft", "M_ScleraRight")
    sclera_ids = [model.material_names.index(n) for n in names if n in model.material_names]
    eyes = []
    occ = occluding_faces(model)
    H, W = image_linear.shape[:2]
    for loop_edges, iris in ((FACEMESH_LEFT_EYE, 473), (FACEMESH_RIGHT_EYE, 468)):
        poly = lm[_loop(loop_edges)]
        lo = np.maximum(np.floor(poly.min(axis=0)) - 2, 0)
        hi = np.minimum(np.ceil(poly.max(axis=0)) + 2, [W, H])
        if np.any(hi - lo < 3):
            eyes.append((poly, np.zeros((0, 3))))
            continue
        w, h = int(hi[0] - lo[0]), int(hi[1] - lo[1])
        K = cam.K.copy()
        K[0, 2] -= lo[0]
        K[1, 2] -= lo[1]
        raster = rasterize(cam.to_camera(verts), model.faces[occ], K, h, w)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - lo - 0.5) * 256).astype(np.int32)], 1, shift=8)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        centre = lm[iris]
        radius = float(np.linalg.norm(lm[iris + 1 : iris + 5] - centre, axis=1).mean())
        far = np.hypot(xx + lo[0] - centre[0], yy + lo[1] - centre[1]) > IRIS_EXCLUDE * radius
        tri = raster.tri_id
        on = tri >= 0
        mat = np.full((h, w), -1)
        mat[on] = model.face_material[occ[tri[on]]]
        wx = (xx + lo[0] - view.origin_px[0]) * view.scale - 0.5
        wy = (yy + lo[1] - view.origin_px[1]) * view.scale - 0.5
        hidden = (
            cv2.remap(
                occl_soft,
                wx.astype(np.float32),
                wy.astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            > 0.5
        )
        sel = mask & far & np.isin(mat, sclera_ids) & ~hidden
        if not sel.any():
            eyes.append((poly, np.zeros((0, 3))))
            continue
        t = occ[tri[sel]]
        b = raster.bary[sel]
        n = np.einsum("nk,nkd->nd", b, normals[model.faces[t]])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        rr = np.einsum("nk,nkd->nd", b, ratio_v[model.faces[t]])
        shade = shading_linear(n, rr, sh)
        pix = image_linear[int(lo[1]) : int(lo[1]) + h, int(lo[0]) : int(lo[0]) + w][sel]
        ok = (shade.min(axis=1) > 1e-4) & (shade.mean(axis=1) >= least)
        a = pix[ok] / shade[ok]
        eyes.append((poly, a[np.all(np.isfinite(a), axis=1) & (a.min(axis=1) > 0)]))
    return eyes


def _opening(poly: np.ndarray) -> float:
    """Area of an eye contour (P, 2) over its width squared: how open the eye is."""
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return area / max(float(np.ptp(x)), 1e-9) ** 2


def _sclera_colour(samples: np.ndarray) -> np.ndarray:
    """Median of sclera samples between the :data:`SCLERA_BRIGHTNESS_QUANTILES` of brightness: the iris,
    lashes, lid shadows and veins darken the rest, glints on the cornea are the very brightest."""
    lum = samples.mean(axis=1)
    lo, hi = np.quantile(lum, SCLERA_BRIGHTNESS_QUANTILES)
    sel = (lum >= lo) & (lum <= hi)
    return np.median(samples[sel] if sel.any() else samples, axis=0)


def _grid_skin_brightness(model, grid: np.ndarray) -> float:
    """Mean brightness of the photometric fit's low-resolution albedo over the cheeks (light's units)."""
    from facetwin.texture.regions import face_regions

    cheeks = face_regions(model, grid.shape[0]).cheeks
    if not cheeks.any():
        return float(np.median(grid))
    return float(grid[cheeks].mean())


def _zero_mean(x):
    x = np.asarray(x, np.float64)
    return x - x.mean()


def _calibrate(
    cheek_albedo: np.ndarray,
    sclera: dict,
    *,
    monotone: bool = False,
    cheek_exposure: float | None = None,
    white: dict | None = None,
    white_shading: np.ndarray | None = None,
    white_over_skin: float | None = None,
) -> tuple[np.ndarray, dict, dict]:
    """Per-channel gains that white-balance and scale the albedo (module docstring, step 4).

    The overall scale is a weighted geometric mean of estimates. Colour photos: the skin-colour manifold
    (the brightness that goes with the cheeks' chromaticity), and the white surfaces beside the face
    (:func:`scene_white`, taken for :data:`SCENE_WHITE_ALBEDO` facing the camera), weighed in up to
    :data:`SCENE_WHITE_TRUST` by how much of them there is and how bright they are
    (:data:`SCENE_WHITE_BRIGHTNESS`); with such a white the cheeks are first desaturated by how vivid the
    photo's colour is (:func:`_vividness`). Monotone photos: the photo's exposure
    (``cheek_exposure``). Then the whites of the eyes, whose albedo is known (:data:`SCLERA_ALBEDO_LINEAR`),
    weighed by how much of them is seen (colour photos: at most :data:`SCLERA_SCALE_TRUST`, falling as
    they disagree with the other estimate, :data:`SCLERA_SCALE_MAX_RATIO`). Where the cheeks' chromaticity
    reads as two tones and neither the eyes nor a white say which, the darker reading is ruled out when the
    photo's white point would make its brightest surface implausibly dark (:data:`BRIGHTEST_SURFACE_RAMP`).

    Args:
        cheek_albedo: (N, 3) delighted cheek texels, the light's units.
        sclera: the sclera's colour (the light's units) and pixel count.
        monotone: gray or sepia photo: no chromaticity, the albedo stays gray.
        cheek_exposure: monotone photos: the cheeks' albedo by the photo's exposure
            (:func:`_exposure_albedo`).
        white: colour photos: the scene white beside the face (:func:`scene_white`), or None.
        white_shading: (3,) with ``white``: the fitted light's shading of a surface facing the camera (the
            light's units), which the white is taken to be.
        white_over_skin: colour photos: the photo's white point (:data:`WHITE_POINT_QUANTILE` of its
            brightness) over the cheeks' brightness in it, or None.

    Returns:
        gains: (3,) divide the albedo by these after :func:`desaturate` by ``wb["vivid"]``, multiply the
            light by them.
        skin: the skin parameters of the corrected mean cheek albedo (None entries for monotone photos).
        wb: what went into the white balance and the scale; ``vivid`` the photo's colour saturation
            (:func:`_vividness`, 1 without a scene white).
    """
    from facetwin.frames import linear_to_srgb
    from facetwin.texture.skin import ita_degrees, planckian_distance

    a = np.asarray(cheek_albedo, np.float64)
    a = a[np.all(np.isfinite(a), axis=1) & (a.min(axis=1) > 0)]
    if a.shape[0] == 0:
        return np.ones(3), _no_skin(), {"method": "none"}
    if a.shape[0] > 4000:
        a = a[np.linspace(0, a.shape[0] - 1, 4000).astype(int)]
    la = np.log(a)
    # Robust centre: drop the texels farthest from the median (moles, shine, stray shadow).
    dist = np.abs(la - np.median(la, axis=0)).max(axis=1)
    la = la[dist <= np.quantile(dist, 0.8)]
    cast = np.zeros(3)
    trust = 0.0
    n_scl = int(sclera.get("pixels", 0))
    usable = sclera.get("albedo_linear") is not None and n_scl >= SCLERA_MIN_PIXELS
    if usable:
        d = _zero_mean(np.log(np.asarray(sclera["albedo_linear"])) - np.log(SCLERA_ALBEDO_LINEAR))
        brighter = float(np.mean(sclera["albedo_linear"])) / float(np.exp(la.mean(axis=0)).mean())
        # A "sclera" darker than the skin, or strongly coloured, is not one (sunglasses, a closed eye).
        usable = brighter >= SCLERA_MIN_OVER_SKIN and float(planckian_distance(d)) <= SCLERA_MAX_OFF_LOCUS
    if usable:
        trust = SCLERA_MAX_TRUST * min(1.0, n_scl / SCLERA_FULL_PIXELS)
        if not monotone:
            cast = trust * d
    mean1 = np.exp((la - cast).mean(axis=0))
    w_white, scale_white = 0.0, None
    if not monotone and white is not None and white.get("linear") is not None and white_shading is not None:
        shading = np.asarray(white_shading, np.float64)
        if np.all(np.isfinite(shading) & (shading > 0)):
            per_channel = np.asarray(white["linear"], np.float64) / (SCENE_WHITE_ALBEDO * shading)
            scale_white = float(np.exp(np.log(per_channel).mean()))
            level = float(linear_to_srgb(np.float32(np.mean(white["linear"]))))
            w_white = (
                SCENE_WHITE_TRUST
                * min(1.0, float(white["share"]) / SCENE_WHITE_FULL_SHARE)
                * float(_smoothstep(level, *SCENE_WHITE_BRIGHTNESS))
            )
    vivid = 1.0
    if monotone:
        off = np.zeros(3)
        scale_prior = float(mean1.mean()) / max(float(cheek_exposure or 0.0), 1e-6)
    else:
        if w_white > 0:
            vivid, off, fit = _vividness(mean1, scale_white, w_white / SCENE_WHITE_TRUST)
        else:
            off, fit = _manifold_fit(mean1)
        mean1 = desaturate(mean1, vivid)
        # The eyes' cast was read in the vivid photo: desaturated like the rest.
        cast = cast / vivid
        scale_prior = fit["scale"]
    scale_skin = scale_prior
    if w_white > 0:
        log_scale = (1.0 - w_white) * math.log(scale_skin) + w_white * math.log(scale_white)
        scale_prior = float(np.exp(log_scale))
    cast = cast + off
    mean2 = mean1 / np.exp(off)
    # Near the manifold's fold the cheeks' chromaticity reads as two tones, each with its own scale.
    other = None if monotone else _other_tone(mean2, fit)
    priors = [scale_prior]
    if other is not None and other["cost"] - fit["cost"] < TONE_AMBIGUITY_COST:
        priors.append(scale_prior * (other["scale"] / scale_skin) ** (1.0 - w_white))
    scale, w_scl, w_other = scale_prior, 0.0, 0.0
    if usable:
        scl = np.asarray(sclera["albedo_linear"], np.float64) / np.exp(cast)
        scale_scl = float(np.exp(np.mean(np.log(scl) - np.log(SCLERA_ALBEDO_LINEAR))))
        # Brightness needs more of the eye than colour does: a few pixels of lid or lash read far darker.
        seen = min(1.0, n_scl / SCLERA_SCALE_FULL_PIXELS)
        if monotone:
            # The exposure is a guess about the scene (is there a white in it?); the eyes are evidence.
            w_scl = seen
            scale = float(np.exp((1.0 - w_scl) * math.log(scale_prior) + w_scl * math.log(scale_scl)))
        else:
            # Two estimates far apart mean one of them is wrong (paint or a lens over the eye, a cast the
            # manifold cannot see), and nothing says which: keep the skin model's then.
            def eyes_weight(prior: float) -> float:
                agree = 1.0 - abs(math.log(scale_scl / prior)) / math.log(SCLERA_SCALE_MAX_RATIO)
                return SCLERA_SCALE_TRUST * seen * min(max(agree, 0.0), 1.0)

            weights = [eyes_weight(p) for p in priors]
            combined = [np.exp((1.0 - w) * math.log(p) + w * math.log(scale_scl)) for p, w in zip(priors, weights)]
            scale, w_scl = float(combined[0]), weights[0]
            if len(priors) > 1:
                costs = (fit["cost"], other["cost"])
                w_other = _between_readings(priors, costs, scale_scl, SCLERA_SCALE_TRUST * seen, weights[1])
                scale = float(combined[0] * (combined[1] / combined[0]) ** w_other)
                w_scl = (1.0 - w_other) * weights[0] + w_other * weights[1]
    w_exposure, brightest = 0.0, None
    if len(priors) > 1 and not usable and white_over_skin is not None and w_white < TONE_EVIDENCE_WEIGHT:
        # A white point darker than charcoal under the darker reading: a photo of light skin under warm
        # light, whose brightest surface is the skin itself, not one of dark skin.
        darker = 0 if priors[0] > priors[1] else 1
        brightest = float(white_over_skin) * float(np.mean(mean2)) / priors[darker]
        implausible = 1.0 - float(
            _smoothstep(math.log(brightest), *(math.log(b) for b in BRIGHTEST_SURFACE_RAMP))
        )
        w_exposure = implausible if darker == 0 else 0.0
        w_other = w_exposure
        scale = float(priors[0] * (priors[1] / priors[0]) ** w_other)
    gains = np.exp(cast) * scale
    cheek = mean2 / scale
    if monotone:
        skin = _no_skin()
    else:
        # Where the eyes moved the scale most of the way to the other reading, that reading's pigments.
        pigments = other if w_other > 0.5 else fit
        skin = {
            "melanin": round(float(pigments["melanin"]), 5),
            "haemoglobin": round(float(pigments["haemoglobin"]), 5),
            "ita_deg": round(float(ita_degrees(cheek)), 3),
            "cheek_albedo_linear": [round(float(x), 5) for x in cheek],
            "manifold_log_residual": round(float(fit["log_residual"]), 5),
        }
        # Near the manifold's fold, the chromaticity reads as two tones; only the eyes or a white say which.
        ambiguous = (
            other is not None
            and other["cost"] - fit["cost"] < TONE_AMBIGUITY_COST
            and max(w_white, w_scl, w_exposure) < TONE_EVIDENCE_WEIGHT
        )
        skin["tone_ambiguous"] = bool(ambiguous)
        skin["ita_other_reading_deg"] = round(other["ita_deg"], 1) if ambiguous else None
    wb = {
        "method": ("sclera+" if trust > 0 else "")
        + ("exposure" if monotone else "skin")
        + ("+white" if w_white > 0 else ""),
        "sclera_trust": round(trust, 3),
        "sclera_scale_weight": round(w_scl, 3),
        "scene_white_weight": round(w_white, 3),
        "light_cast_log": [round(float(x), 4) for x in cast],
        "scale": round(float(scale), 5),
        "scale_without_sclera": round(float(scale_prior), 5),
        "scale_skin_manifold": None if monotone else round(float(scale_skin), 5),
        "scale_scene_white": None if scale_white is None else round(scale_white, 5),
        "vivid": round(float(vivid), 4),
        "other_reading_weight": round(w_other, 3),
        "exposure_weight": round(w_exposure, 3),
        "brightest_surface_albedo": None if brightest is None else round(brightest, 4),
    }
    return gains, skin, wb


def _between_readings(
    priors: list[float], costs: tuple[float, float], scale_scl: float, precision: float, w_other: float
) -> float:
    """How far the overall scale moves from the best reading of the skin manifold to the other one, where
    the manifold reads the cheeks' chromaticity as two tones (its fold) and the whites of the eyes say which.

    Each reading is a hypothesis about the skin's brightness (``priors``: the scale without the eyes under
    each), believed in proportion to ``exp(-cost / 2)`` (:func:`_fit_chromaticity`'s costs are chi-square).
    The eyes' estimate ``scale_scl`` (log variance ``MANIFOLD_SCALE_LOG_SIGMA^2 / precision`` about the
    reading that is true, ``precision`` their weight by the pixels seen) is likelier under one than the other:
    the other reading's posterior weight is how far the scale moves, in full once the eyes weigh
    :data:`TONE_EVIDENCE_WEIGHT` in the other reading's combination (``w_other``, which falls as they
    disagree with it) and not at all below a third of that. Without eyes the best reading stands (dark skin
    is not lightened on a guess) and the report flags the tone; nor do eyes far from both readings decide
    (face_paint's read 2.6 times lighter than even her lighter reading). A white beside the face does not
    count here: a gray wall would pass for one and lighten dark skin (it bounds the photo's vividness instead,
    :func:`_vividness`). Brown skin on the fold (melanin 0.17) read as ITA -44 for a true -34 under the
    known-answer scenes' warm key: the eyes' estimate lay between the readings, and the plain combination
    barely moved the scale (now -35); light skin with much blood, read as ITA -75, was taken back to +29 (for
    +29) by eyes the plain combination ignored as too far from the dark reading.

    Returns:
        in [0, 1], the share of the way (in log) from the best reading's combination to the other's.
    """
    var = MANIFOLD_SCALE_LOG_SIGMA**2 / precision
    seen = math.log(scale_scl)
    log_post = np.array([-((seen - math.log(p)) ** 2) / (2.0 * var) - 0.5 * c for p, c in zip(priors, costs)])
    post = np.exp(log_post - log_post.max())
    return float(post[1] / post.sum()) * float(_smoothstep(w_other, TONE_EVIDENCE_WEIGHT / 3.0, TONE_EVIDENCE_WEIGHT))


def desaturate(linear: np.ndarray, vivid: float) -> np.ndarray:
    """Undo a vivid colour rendering: each colour's zero-mean log RGB divided by ``vivid``, its log
    brightness (mean over the channels) kept.

    Args:
        linear: (..., 3) linear RGB (NaN passes through).
        vivid: the rendering's saturation, > 0 (1: unchanged).

    Returns:
        (..., 3) float32 (``linear`` itself when it is float32 and ``vivid`` is 1).
    """
    if not vivid > 0:
        raise ValueError(f"vivid: expected > 0, got {vivid}")
    if vivid == 1.0:  # most photos: no copy of a 4096 tile, no round trip through the log
        return np.asarray(linear, np.float32)
    log = np.log(np.maximum(np.asarray(linear, np.float32), 1e-6))
    mean = log.mean(axis=-1, keepdims=True)
    return np.exp(mean + (log - mean) / np.float32(vivid))


def _manifold_fit(mean_albedo: np.ndarray) -> tuple[np.ndarray, dict]:
    """The cheeks' point on the skin manifold (:func:`_fit_chromaticity`), what is off the manifold in
    chromaticity put down to the light's colour.

    Returns:
        (off, fit): (3,) zero-mean log of the light's colour; the fit of ``mean_albedo / exp(off)``.
    """
    first = _fit_chromaticity(mean_albedo)
    off = _zero_mean(np.log(mean_albedo) - np.log(first["albedo_linear"]))
    return off, _fit_chromaticity(mean_albedo / np.exp(off))


def _vividness(mean_albedo: np.ndarray, scale_white: float, white_weight: float) -> tuple[float, np.ndarray, dict]:
    """How vivid the photo's colour rendering is, judged by a white beside the face.

    A vivid rendering multiplies log chromaticity (:func:`desaturate` undoes it), and to the skin manifold
    more saturated skin is darker skin: light skin reads as brown. A white beside the face, lit as it is,
    bounds how dark the skin is. Over saturations from 1 to :data:`VIVID_MAX`, minimises the manifold fit's
    cost of the desaturated cheeks (:func:`_manifold_fit`: what is off the manifold is the light's, so
    the cost is the blood prior's, which keeps the fit from jumping along the manifold's ridge of brown
    tones, where a few % of saturation move ITA by 10 deg) + the log-normal prior on the saturation
    (:data:`VIVID_LOG_SIGMA`) + ``white_weight`` times the white's misfit: how far (log) its albedo under
    the fitted scale is below :data:`VIVID_WHITE_MIN_ALBEDO`, in :data:`VIVID_WHITE_LOG_SIGMA`. Only
    lighter skin counts: past melanin of about 0.2 the manifold's log chromaticity turns back towards the
    neutral (:mod:`facetwin.texture.skin`), and a desaturated colour there reads as still darker skin.

    Args:
        mean_albedo: (3,) the cheeks' mean delighted albedo, the light's units.
        scale_white: the scale that makes the white :data:`SCENE_WHITE_ALBEDO`.
        white_weight: in [0, 1], how much the white is believed.

    Returns:
        (vivid, off, fit): the saturation, in [1, VIVID_MAX], and :func:`_manifold_fit` of the cheeks
        desaturated by it.
    """
    base = _manifold_fit(mean_albedo)
    # The white's albedo under a scale is SCENE_WHITE_ALBEDO * scale_white / scale.
    too_dark = VIVID_WHITE_MIN_ALBEDO / (SCENE_WHITE_ALBEDO * scale_white)
    best, best_cost = (1.0, *base), math.inf
    for vivid in np.exp(np.linspace(0.0, math.log(VIVID_MAX), 13)):
        off, fit = base if vivid == 1.0 else _manifold_fit(desaturate(mean_albedo, float(vivid)))
        if fit["melanin"] > base[1]["melanin"]:
            continue
        cost = (
            fit["cost"]
            + (math.log(vivid) / VIVID_LOG_SIGMA) ** 2
            + white_weight * (max(0.0, math.log(too_dark * fit["scale"])) / VIVID_WHITE_LOG_SIGMA) ** 2
        )
        if cost < best_cost:
            best, best_cost = (float(vivid), off, fit), cost
    return best


def _fit_chromaticity(albedo: np.ndarray) -> dict:
    """The skin-manifold point with the chromaticity of ``albedo``, and the brightness scale to it.

    Minimises ``|r|^2 / CHROMA_SIGMA^2 + (log h - log BLOOD_PRIOR)^2 / BLOOD_PRIOR_LOG_SIGMA^2`` over the
    manifold, with ``r`` the zero-mean (scale-free) log-albedo residual: on its own, chromaticity does not
    pin dark skin down (much melanin with little blood looks like less melanin with more blood, at half the
    brightness), so the blood fraction is held to its usual range. A grid search, then a local refinement.

    Returns:
        dict: ``albedo_linear`` (3,) the manifold point, ``cost`` the minimum, ``melanin``,
        ``haemoglobin``, ``scale``
        (``exp(mean(log albedo - log manifold point))``), ``log_residual`` (RMS over channels of ``r``).
    """
    from facetwin.texture.skin import HAEMOGLOBIN_RANGE, MELANIN_RANGE, skin_albedo_linear, skin_grid

    g = skin_grid()
    la = np.log(np.maximum(np.asarray(albedo, np.float64), 1e-6))
    target = _log_chromaticity(albedo)
    c, lm, lh = _grid_costs(target)
    i, j = np.unravel_index(np.argmin(c), c.shape)
    cur = np.array([lm[i, j], lh[i, j]])
    fc = float(c[i, j])
    step = np.array([g.log_melanin[1] - g.log_melanin[0], g.log_haemoglobin[1] - g.log_haemoglobin[0]])
    lo = np.log([MELANIN_RANGE[0], HAEMOGLOBIN_RANGE[0]])
    hi = np.log([MELANIN_RANGE[1], HAEMOGLOBIN_RANGE[1]])
    for shrink in (0.5, 0.25, 0.125, 0.0625):
        for d in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)):
            cand = np.clip(cur + shrink * step * np.asarray(d), lo, hi)
            fv = float(_cost(target, cand[1], np.log(skin_albedo_linear(np.exp(cand[0]), np.exp(cand[1])))))
            if fv < fc:
                cur, fc = cand, fv
    s = np.log(skin_albedo_linear(np.exp(cur[0]), np.exp(cur[1])))
    r = (s - s.mean()) - target
    return {
        "albedo_linear": np.exp(s),
        "cost": fc,
        "melanin": float(np.exp(cur[0])),
        "haemoglobin": float(np.exp(cur[1])),
        "scale": float(np.exp((la - s).mean())),
        "log_residual": float(np.sqrt((r**2).mean())),
    }


def _cost(target: np.ndarray, log_h, log_albedo: np.ndarray):
    """:func:`_fit_chromaticity`'s cost of manifold points (``log_albedo`` (..., 3), blood ``log_h`` (...))
    for the zero-mean log colour ``target``."""
    r = (log_albedo - log_albedo.mean(axis=-1, keepdims=True)) - target
    prior = ((log_h - math.log(BLOOD_PRIOR)) / BLOOD_PRIOR_LOG_SIGMA) ** 2
    return (r**2).sum(axis=-1) / CHROMA_SIGMA**2 + prior


def _log_chromaticity(albedo: np.ndarray) -> np.ndarray:
    """(3,) zero-mean natural-log colour of ``albedo`` (its scale left out)."""
    la = np.log(np.maximum(np.asarray(albedo, np.float64), 1e-6))
    return la - la.mean()


def _grid_costs(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, m) cost of each inner node of the manifold grid for the zero-mean log colour ``target``
    (:func:`_log_chromaticity`), and the nodes' log melanin and log blood fractions."""
    from facetwin.texture.skin import skin_grid

    g = skin_grid()
    lm, lh = np.meshgrid(g.log_melanin[1:-1], g.log_haemoglobin[1:-1], indexing="ij")
    return _cost(target, lh, np.log(g.albedo_linear[1:-1, 1:-1])), lm, lh


def _other_tone(albedo: np.ndarray, fit: dict) -> dict | None:
    """The cheapest reading of ``albedo``'s chromaticity at least :data:`TONE_AMBIGUITY_ITA` of ITA away
    from ``fit`` (:func:`_fit_chromaticity` of the same chromaticity), as ``ita_deg``, ``cost``, its
    ``melanin`` and ``haemoglobin``, and the ``scale`` that brings ``albedo`` to it; None if there is none on
    the grid."""
    from facetwin.texture.skin import ita_degrees, skin_grid

    c, lm, lh = _grid_costs(_log_chromaticity(albedo))
    nodes = skin_grid().albedo_linear[1:-1, 1:-1]
    ita = ita_degrees(nodes)
    far = np.abs(ita - float(ita_degrees(fit["albedo_linear"]))) >= TONE_AMBIGUITY_ITA
    if not far.any():
        return None
    k = np.unravel_index(np.argmin(np.where(far, c, np.inf)), c.shape)
    reading = nodes[k]
    scale = float(np.exp(np.mean(np.log(np.maximum(np.asarray(albedo, np.float64), 1e-6)) - np.log(reading))))
    return {
        "ita_deg": float(ita[k]),
        "cost": float(c[k]),
        "scale": scale,
        "melanin": float(np.exp(lm[k])),
        "haemoglobin": float(np.exp(lh[k])),
    }


def _no_skin() -> dict:
    return {
        "melanin": None,
        "haemoglobin": None,
        "ita_deg": None,
        "cheek_albedo_linear": None,
        "manifold_log_residual": None,
        "tone_ambiguous": None,
        "ita_other_reading_deg": None,
    }


def _exposure_albedo(white: float, cheek_raw: np.ndarray) -> float:
    """The cheeks' albedo by the exposure of a monotone photo, whose chromaticity cannot fix the scale.

    The photo's white point (its :data:`WHITE_POINT_QUANTILE` brightness, e.g. a collar or a highlight of
    the background) is taken for a white surface of albedo :data:`WHITE_ALBEDO` lit as the cheeks are.

    Args:
        white: the photo's white point, linear (:func:`_white_point`).
        cheek_raw: (N, 3) the photo's linear values at the cheek texels.

    Returns:
        the cheeks' albedo.
    """
    raw = np.asarray(cheek_raw, np.float64).mean(axis=1)
    raw = raw[np.isfinite(raw)]
    level = float(np.median(raw)) if raw.size else white
    return WHITE_ALBEDO * level / white


def _white_point(image_linear: np.ndarray) -> float:
    """The photo's white point: its :data:`WHITE_POINT_QUANTILE` brightness (mean of the channels, linear)."""
    return max(float(np.quantile(channel_mean(image_linear), WHITE_POINT_QUANTILE)), 1e-6)


def scene_white(image_linear: np.ndarray, oval_poly: np.ndarray, skin_level: float) -> dict:
    """The colour of the white surfaces beside a face (a collar, a shirt, a wall), for the albedo's scale.

    Looks in a box around the face oval (:data:`SCENE_WHITE_REGION`), the oval itself left out
    (:data:`SCENE_WHITE_EXCLUDE`), for pixels that are neutral (:data:`SCENE_WHITE_MAX_CHROMA`), brighter
    than the skin (:data:`SCENE_WHITE_OVER_SKIN`) and not clipped (:data:`SCENE_WHITE_CLIP`); the white is
    the median colour of the brighter quarter of them. Large photos are searched on a regular subsample.

    Args:
        image_linear: (H, W, 3) the photo, linear sRGB.
        oval_poly: (K, 2) the face oval, photo pixels (:func:`facetwin.fit.photometric.face_oval_px`).
        skin_level: the cheeks' typical brightness in the photo (mean of the channels, linear).

    Returns:
        dict: ``linear`` (3,) the white's colour in the photo (None when there are fewer neutral pixels
        than :data:`SCENE_WHITE_MIN_SHARE` of the oval's area), ``share`` their count over the oval's area.
    """
    import cv2

    from facetwin.frames import linear_to_srgb

    img = np.asarray(image_linear, np.float32)
    poly = np.asarray(oval_poly, np.float64)
    h, w = img.shape[:2]
    centre = poly.mean(axis=0)
    height = max(float(np.ptp(poly[:, 1])), 1.0)
    side, up, down = SCENE_WHITE_REGION
    x0, x1 = max(int(centre[0] - side * height), 0), min(int(centre[0] + side * height) + 1, w)
    y0, y1 = max(int(centre[1] - up * height), 0), min(int(centre[1] + down * height) + 1, h)
    area = max(float(cv2.contourArea(poly.astype(np.float32))), 1.0)
    if x1 <= x0 or y1 <= y0:
        return {"linear": None, "share": 0.0}
    step = max(1, math.ceil(math.sqrt((x1 - x0) * (y1 - y0) / 1.0e6)))
    crop = img[y0:y1:step, x0:x1:step]
    inside = np.zeros(crop.shape[:2], np.uint8)
    ring = (centre + SCENE_WHITE_EXCLUDE * (poly - centre) - [x0, y0]) / step
    cv2.fillPoly(inside, [np.round(ring * 16).astype(np.int32)], 1, shift=4)
    level = crop.mean(axis=2)
    cand = (inside == 0) & (level >= SCENE_WHITE_OVER_SKIN * skin_level) & (crop.min(axis=2) > 1e-4)
    cand &= linear_to_srgb(crop.max(axis=2)) < SCENE_WHITE_CLIP
    px = crop[cand].astype(np.float64)
    log = np.log(px)
    neutral = np.linalg.norm(log - log.mean(axis=1, keepdims=True), axis=1) <= SCENE_WHITE_MAX_CHROMA
    px = px[neutral]
    share = px.shape[0] * step * step / area
    if share < SCENE_WHITE_MIN_SHARE:
        return {"linear": None, "share": round(share, 4)}
    bright = px.mean(axis=1)
    white = np.median(px[bright >= np.quantile(bright, 0.75)], axis=0)
    return {"linear": [round(float(x), 5) for x in white], "share": round(share, 4)}


def _take_off_shine(albedo: np.ndarray, confidence: np.ndarray, reg) -> tuple[np.ndarray, np.ndarray, float]:
    """The face tile without its shine (:func:`facetwin.texture.delight.remove_specular`) on the skin.

    The eyes, lips and brows keep theirs (their colour is not the skin's, the dichromatic split would take
    it for shine), and the removal fades to nothing at their edges (:data:`SHINE_FADE_UV`); the confidence
    lost to the shine (below) goes on across their edges and fades over the same distance inside them.

    Args:
        albedo: (S, S, 3) delighted, white-balanced face tile (NaN where unseen).
        confidence: (S, S) its confidence.
        reg: the tile's :class:`facetwin.texture.regions.FaceRegions`.

    Returns:
        (albedo, confidence, mean shine taken off the treated texels). Under strong shine the diffuse
        colour is a guess, so the confidence falls with the shine's share (:data:`SHINE_CONFIDENCE`).
    """
    import cv2

    from facetwin.texture.complete import weighted_blur
    from facetwin.texture.delight import remove_specular

    size = albedo.shape[0]
    skin_only = ~reg.eyes & ~reg.lips & ~reg.brows
    treat = (confidence > 0.0) & skin_only
    _, spec = remove_specular(albedo, treat)
    inside = cv2.distanceTransform(skin_only.astype(np.uint8), cv2.DIST_L2, 5)
    spec *= _smoothstep(inside, 0.0, SHINE_FADE_UV * size).astype(np.float32)
    out = albedo - spec[..., None]
    conf = np.array(confidence, np.float32)
    shiny = spec > 0.0
    share = np.zeros(conf.shape, np.float32)
    share[shiny] = spec[shiny] / np.maximum(np.nan_to_num(out[shiny]).mean(axis=1), 1e-6)
    # The share over a neighbourhood: the glints of single pores come off cleanly and keep their texels.
    sigma = SHINE_SHARE_SMOOTH_UV * size
    share = weighted_blur(share, treat, sigma)
    keep = np.ones(conf.shape, np.float32)
    keep[treat] = np.clip(1.0 - share[treat] / SHINE_CONFIDENCE, 0.0, 1.0)
    # The loss goes on into the eyes, lips and brows and fades there as the removal fades on the skin: a step
    # at their outlines was a seam in the fill (a straight edge along smiling_woman's upper lip at 4096).
    # Each texel of theirs takes the loss of the nearest skin texel (the label of a zero pixel of the
    # transform's input, numbered in scan order).
    into, nearest = cv2.distanceTransformWithLabels(
        (~skin_only).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    rim = ~skin_only & (conf > 0.0) & (into < SHINE_FADE_UV * size)
    lost = 1.0 - keep.ravel()[np.flatnonzero(skin_only.ravel())[nearest[rim] - 1]]
    keep[rim] = 1.0 - lost * (1.0 - _smoothstep(into[rim], 0.0, SHINE_FADE_UV * size))
    return out, conf * keep, float(spec[treat].mean()) if treat.any() else 0.0


def _take_off_folds(model: HeadModel, tile: _Tile, reg, skin: dict | None) -> None:
    """Divide out the shading of folds and creases the mesh lacks
    (:func:`facetwin.texture.delight.residual_shading` between :data:`FOLD_SCALES_MM`, at most
    :data:`FOLD_MAX_LOG` either way) from the face tile's seen skin, in place; ``skin`` is the tone
    :func:`_calibrate` read (its ``melanin`` and ``haemoglobin``), None for a monotone photo (its lines
    only)."""
    import cv2

    from facetwin.texture.delight import residual_shading
    from facetwin.texture.uvmap import tile_cm_per_uv

    size = tile.albedo.shape[0]
    per_mm = size / (10.0 * tile_cm_per_uv(model, 0))
    # Hairs of the brows and lashes beyond the regions' outlines are dark and gray, as a shadow is: the
    # surroundings of the eyes and brows are left out, and the correction fades in beyond them (no outline).
    margin = FOLD_HAIR_MARGIN_MM * per_mm
    away = hair_distance(reg.eyes, reg.brows, FOLD_HAIR_MARGIN_MM / FOLD_LOWER_LID_MARGIN_MM)
    weight = np.where((away < margin) | reg.features, 0.0, np.clip(tile.confidence, 0.0, 1.0)).astype(np.float32)
    band = (FOLD_SCALES_MM[0] * per_mm, FOLD_SCALES_MM[1] * per_mm)
    tone = (None, None) if skin is None else (float(skin["melanin"]), float(skin["haemoglobin"]))
    shading = residual_shading(tile.albedo, weight, *tone, band)
    # Nor does it stop dead at the lips and nostrils, whose outlines are coarse (a step there showed as a
    # staircase along luciano's lower lip at 2048 texels).
    off_features = cv2.distanceTransform((~reg.features).astype(np.uint8), cv2.DIST_L2, 5)
    fade = _smoothstep(away, margin, 2.0 * margin) * _smoothstep(off_features, 0.0, FOLD_FEATURE_FADE_MM * per_mm)
    shading = np.clip(shading, -FOLD_MAX_LOG, FOLD_MAX_LOG) * fade
    tile.albedo = tile.albedo * np.exp(-shading)[..., None]


def _take_off_interreflection(model: HeadModel, tile: _Tile, ratio_v: np.ndarray, bounce: np.ndarray) -> None:
    """Divide the light that skin of albedo ``bounce`` (3,) reflects into each crease out of a tile's albedo,
    in place (:func:`facetwin.texture.delight.interreflected`): the unwrap divided by the shading with the
    plain visibility ratio ``ratio_v`` (V, 3), interpolated across each triangle as it is here. Dividing by
    the interreflected ratio over the plain one, ``1 / (1 - rho (1 - V))``, is multiplying by its inverse,
    which is linear in ``V``: it is interpolated as ``V`` is."""
    from facetwin.texture.uvmap import texel_positions

    rho = np.asarray(bounce, np.float32)
    factor = (1.0 - rho) + rho * np.asarray(ratio_v, np.float32)
    tile.albedo *= np.nan_to_num(texel_positions(model, factor, tile.raster), nan=1.0)


def hair_distance(eyes: np.ndarray, brows: np.ndarray, stretch_below: float) -> np.ndarray:
    """How far each texel of a face tile is from the hairs of the brows and lashes, in texels, with the
    distance straight below an eye counted ``stretch_below`` times (the lower lashes are short).

    Below means that the texel's nearest eye texel lies up the face from it (the tile's rows run down the
    face, :mod:`facetwin.texture.uvmap`); the stretch fades in from a direction 0.3 of the way to straight
    down to 0.8 of it, so that a margin drawn at a fixed stretched distance has no corner at the eye's ends.

    Args:
        eyes, brows: (S, S) bool regions (:func:`facetwin.texture.regions.face_regions`).
        stretch_below: >= 1.

    Returns:
        (S, S) float32; 0 inside the regions.
    """
    import cv2

    if stretch_below < 1.0:
        raise ValueError(f"stretch_below: expected >= 1, got {stretch_below}")
    to_brows = cv2.distanceTransform((~brows).astype(np.uint8), cv2.DIST_L2, 5)
    if not eyes.any():
        return to_brows
    to_eyes, nearest = cv2.distanceTransformWithLabels(
        (~eyes).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # Each eye texel has its own label: the row of the nearest one, per texel.
    inside = np.flatnonzero(eyes.ravel())
    row_of = np.zeros(int(nearest.max()) + 1, np.float32)
    row_of[nearest.ravel()[inside]] = inside // eyes.shape[1]
    drop = np.arange(eyes.shape[0], dtype=np.float32)[:, None] - row_of[nearest]
    below = _smoothstep(drop / np.maximum(to_eyes, 1e-6), 0.3, 0.8)
    return np.minimum(to_eyes * (1.0 + below * (stretch_below - 1.0)), to_brows).astype(np.float32)


def glints_off(
    albedo: np.ndarray,
    confidence: np.ndarray,
    region: np.ndarray,
    sigma: float,
    limit: float,
    fade: float,
    detail: float = 0.0,
    yellower: float | None = None,
    cell: int | None = None,
) -> np.ndarray:
    """A region of the albedo without the glints left in it: no texel brighter than the region around it by
    more than ``limit``, and the colour of those that were pulled to the region's own.

    Pigment darkens skin and lips (freckles, moles, lines, stubble); nothing in them is a patch lighter than
    its surroundings but light the delighting left: a glint of the lips' gloss, or the shine of a nose wing or
    a cheekbone that the dichromatic split missed (the light's colour close to the skin's, a rim light's
    warm streak). The surroundings are the weighted Gaussian mean (``sigma`` texels) of the region's log
    colour, taken twice, the second time without what the first found brighter by half the limit or more,
    so a shine over half the region does not raise its own reference.

    Args:
        albedo: (S, S, 3) delighted face tile, linear (NaN where unseen).
        confidence: (S, S) its confidence.
        region: (S, S) bool, where to look (the lips, or the skin without the features).
        sigma: texels.
        limit: natural log of the mean channel.
        fade: texels from the region's edge over which the step fades in (the region's rim may be another
            one's: the fitted mouth is not quite the real one).
        detail: Gaussian sigma, texels, of the patch a texel is judged and moved with (0: each texel alone).
        yellower: a bright texel whose log blue-green ratio is this much under its surroundings' is kept (the
            skin the lips' region takes in is brighter than the lips, but yellower, than a glint); None: no
            such test.
        cell: texels per side of the grid's cells the patches are found on; None: ``int(detail)`` (1 is
            the slow reference, every texel its own cell).

    Returns:
        (S, S, 3) float32, ``albedo`` with the glints taken down.
    """
    import cv2

    from facetwin.texture.complete import mask_box, weighted_blur

    full = np.asarray(albedo, np.float32)
    out = full.copy()
    region = np.asarray(region, bool)
    if region.sum() < 16:
        return out
    # A small region (the lips) is worked on its box, with room for the blurs.
    box = mask_box(region, math.ceil(4.0 * sigma) + 1)
    a, region = full[box], region[box]
    seen = region & (np.asarray(confidence)[box] > 0.0) & all_channels(np.isfinite(a))
    if seen.sum() < 16:
        return out
    # What moves is a patch, smooth at ``detail``: it is found on a grid a patch's width apart (the
    # texels' mean within each cell), and the texels take its change (2 s at 2048 in full, 0.4 s so).
    k = max(int(detail) if cell is None else int(cell), 1)
    height, width = seen.shape
    hk, wk = -(-height // k), -(-width // k)
    weight = seen.astype(np.float32)
    lin = np.where(seen[..., None], a, np.float32(0.0))
    if k > 1:
        weight = cv2.resize(weight, (wk, hk), interpolation=cv2.INTER_AREA)
        lin = cv2.resize(lin, (wk, hk), interpolation=cv2.INTER_AREA)
    lin = lin / np.maximum(weight, 1e-6)[..., None]
    cell_seen = weight > 0.0
    log_a = np.log(np.maximum(lin, 1e-4)).astype(np.float32)
    w = weight.astype(np.float32)
    patch = log_a if detail == 0.0 else weighted_blur(log_a, w, detail / k)
    level = channel_mean(patch)
    for _ in range(2):
        ref = weighted_blur(log_a, w, sigma / k)
        w = (weight * (level <= channel_mean(ref) + 0.5 * limit)).astype(np.float32)
    held = 1.0
    if yellower is not None:
        held = 1.0 - _smoothstep((ref[..., 2] - ref[..., 1]) - (patch[..., 2] - patch[..., 1]), 0.0, yellower)
    inside = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)
    if k > 1:
        inside = cv2.resize(inside, (wk, hk), interpolation=cv2.INTER_AREA)
    excess = np.where(cell_seen, level - channel_mean(ref) - limit, 0.0) * held * _smoothstep(inside, 0.0, fade)
    # How far over: 0 up to the limit, 1 at twice it; the colour follows the brightness down.
    share = np.clip(excess / limit, 0.0, 1.0)[..., None]
    towards = (ref - channel_mean(ref, keepdims=True)) - (patch - channel_mean(patch, keepdims=True))
    change = (share * towards - np.clip(excess, 0.0, None)[..., None]).astype(np.float32)
    if k > 1:
        change = cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR)
    moved = seen & ~all_channels(change == 0.0)
    a_out = out[box]
    a_out[moved] = a[moved] * np.exp(change[moved])
    return out


def _plausibility(albedo: np.ndarray, tone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How plausible each texel is as the skin of a person of this skin tone.

    Returns:
        (chroma, bright): (S, S) each in [0, 1]. ``chroma`` is 1 within :data:`CHROMA_PLAUSIBLE` (log
        chromaticity) of the tone, falling to 0 at :data:`CHROMA_IMPLAUSIBLE`; ``bright`` is 1 up to
        :data:`BRIGHT_PLAUSIBLE` brighter than the tone, falling to 0 at :data:`BRIGHT_IMPLAUSIBLE`. Both
        are 0 where the albedo is missing.
    """
    la = np.log(np.maximum(np.nan_to_num(albedo, nan=0.0), 1e-4)).astype(np.float32)
    lt = np.log(np.maximum(tone.astype(np.float64), 1e-4)).astype(np.float32)
    la_mean = channel_mean(la, keepdims=True)
    d = (la - la_mean) - (lt - lt.mean())
    seen = all_channels(np.isfinite(albedo))
    chroma = 1.0 - _smoothstep(np.sqrt(channel_sum(d**2)), CHROMA_PLAUSIBLE, CHROMA_IMPLAUSIBLE)
    bright = 1.0 - _smoothstep(la_mean[..., 0] - lt.mean(), BRIGHT_PLAUSIBLE, BRIGHT_IMPLAUSIBLE)
    return np.where(seen, chroma, 0.0), np.where(seen, bright, 0.0)


def _brow_plausibility(albedo: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """How plausible each texel of the brows is as brow hair or as the skin between the hairs.

    Hairs are darker than the skin, whatever their colour: a texel darker than the tone is judged by its
    brightness alone, as in the other features (:func:`_plausibility`). One lighter than the tone is skin,
    whiter than the skin where a highlight whitens it: its colour's departure from the tone toward gray
    (along the tone's own log chromaticity) counts against it as a departure from the skin's colour does
    elsewhere (:data:`CHROMA_PLAUSIBLE`, :data:`CHROMA_IMPLAUSIBLE`), in full from :data:`BROW_LIGHTER_LOG`
    lighter. woman_three_quarter's far brow ridge: bluish white, 1.5 times the tone, 0.4 toward gray. A lit
    brow ridge more saturated than the tone (300w_indoor_029's warm key light) is kept.

    Args:
        albedo: (H, W, 3) linear albedo (NaN where missing).
        tone: (3,) the person's skin tone, linear.

    Returns:
        (H, W) in [0, 1], 0 where the albedo is missing.
    """
    la = np.log(np.maximum(np.nan_to_num(albedo, nan=0.0), 1e-4))
    lt = np.log(np.maximum(tone.astype(np.float64), 1e-4))
    lighter = la.mean(axis=2) - float(lt.mean())
    hue = lt - lt.mean()
    norm = float(np.linalg.norm(hue))
    if norm > 1e-6:
        d = (la - la.mean(axis=2, keepdims=True)) - hue
        whiter = np.maximum(-(d @ (hue / norm)), 0.0)
    else:  # a gray tone has no direction toward gray
        whiter = np.zeros(lighter.shape)
    held = _smoothstep(lighter, 0.0, BROW_LIGHTER_LOG)
    colour = _smoothstep(whiter, CHROMA_PLAUSIBLE, CHROMA_IMPLAUSIBLE)
    _, bright = _plausibility(albedo, tone)
    return bright * (1.0 - held * colour)


def _patch_colour(albedo: np.ndarray, seen: np.ndarray, sigma: float) -> np.ndarray:
    """(S, S, 3) float32: the geometric mean of the ``seen`` albedo (S, S, 3) around each texel, a Gaussian
    of ``sigma`` texels; NaN where the albedo is missing. Tiles larger than :data:`PATCH_WORK_SIZE` are
    averaged on that grid (the plain mean within a working texel, then the geometric mean of those) and the
    result enlarged: 2.8 s at 4096 in full, 0.3 s so."""
    import cv2

    from facetwin.texture.complete import weighted_blur

    ok = seen & all_channels(np.isfinite(albedo))
    size = ok.shape[0]
    work = min(size, PATCH_WORK_SIZE)
    a = np.array(albedo, np.float32)
    a[~ok] = 0.0
    w = ok.astype(np.float32)
    if work < size:
        a = cv2.resize(a, (work, work), interpolation=cv2.INTER_AREA)
        w = cv2.resize(w, (work, work), interpolation=cv2.INTER_AREA)
        a = a / np.maximum(w, 1e-6)[..., None]
        sigma = sigma * work / size
    log = np.log(np.maximum(np.where(w[..., None] > 0.0, a, 1.0), 1e-4)).astype(np.float32)
    out = np.exp(weighted_blur(log, w, sigma))
    if work < size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    out = out.astype(np.float32, copy=False)
    out[~ok] = np.nan
    return out


def dark_fringe(
    judged: np.ndarray, seen: np.ndarray, valid: np.ndarray, tone: np.ndarray, where: np.ndarray | None
) -> np.ndarray:
    """How much each seen texel belongs to a dark fringe of the unseen: a patch darker than the skin tone
    (:data:`DARK_FRINGE_RAMP`) that reaches the edge of what the photo showed of the skin.

    Dark skin beside what the photo did not show as skin is mostly what hid it, thinning out (hair, a
    beard's edge) or the shading at a grazing edge, which the fitted light does not explain (the jaw's
    underside); either way not the albedo, and the completion would carry it into the whole fill. The patch
    is all texels darker than the ramp's start connected (8-neighbours) to an unseen texel; each is left
    out as far as it is dark.

    Args:
        judged: (S, S, 3) linear patch colour (:func:`_patch_colour`), NaN where missing.
        seen: (S, S) bool texels taken as skin so far.
        valid: (S, S) bool texels on the surface.
        tone: (3,) the person's skin tone, linear.
        where: (S, S) bool texels where a fringe may lie (their edges with the rest are no edge of the
            unseen), or None for everywhere.

    Returns:
        (S, S) float32 in [0, 1], 0 off the fringe.
    """
    import cv2

    lt = float(np.log(np.maximum(tone.astype(np.float64), 1e-4)).mean())
    la = channel_mean(np.log(np.maximum(np.nan_to_num(judged, nan=1.0), 1e-4))) - lt
    darkness = _smoothstep(-la, -math.log(DARK_FRINGE_RAMP[0]), -math.log(DARK_FRINGE_RAMP[1]))
    dark = seen & (darkness > 0.0)
    unseen = valid & ~seen
    if where is not None:
        dark &= where
        unseen &= where
    _, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    edge = cv2.dilate(unseen.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & dark
    reached = np.isin(labels, np.unique(labels[edge])) & dark
    return np.where(reached, darkness, 0.0).astype(np.float32)


def grow_implausible(plausible: np.ndarray, grow_uv: float = IMPLAUSIBLE_GROW_UV) -> np.ndarray:
    """Spread the low plausibility of skin patches over their rims.

    A patch too bright or off the skin's colour (a rim light's streak, paint) is surrounded by a rim
    where the same error is fainter and passes the tests. Each texel takes the lowest plausibility within
    ``r = grow_uv * S`` of it, counting only patches at least ``r`` across: the map is first closed over
    ``r / 2`` (a maximum filter then a minimum filter), so grain, pores and single outliers do not wipe
    out the skin around them. Tiles larger than :data:`GROW_MAX_GRID` are filtered on blocks of texels,
    each taking its lowest value, and the result is enlarged bilinearly.

    Args:
        plausible: (S, S) in [0, 1], 1 where nothing is implausible (unseen texels, features).
        grow_uv: ``r`` as a fraction of the tile.

    Returns:
        (S, S) float32, never above ``plausible``.
    """
    import cv2

    p = np.asarray(plausible, np.float32)
    size = p.shape[0]
    # Large tiles are judged on blocks (their lowest value): the reach is millimetres, and a disc
    # filter's cost grows with its area.
    k = -(-size // GROW_MAX_GRID)
    n = -(-size // k)
    coarse = np.ones((n * k, n * k), np.float32)
    coarse[:size, :size] = p
    coarse = coarse.reshape(n, k, n, k).min(axis=(1, 3))
    r = max(round(grow_uv * n), 1)
    rs = max(r // 2, 1)
    small = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rs + 1, 2 * rs + 1))
    large = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * (r + rs) + 1, 2 * (r + rs) + 1))
    grown = cv2.erode(cv2.dilate(coarse, small), large)
    if k > 1:
        grown = cv2.resize(grown, (n * k, n * k), interpolation=cv2.INTER_LINEAR)[:size, :size]
    return np.minimum(p, grown)


def _detail_spread(model: HeadModel, face_tile: _Tile, reg, monotone: bool) -> np.ndarray:
    """(B, 3) band spreads of the fine detail of the well-seen plain skin of the face tile
    (:func:`facetwin.texture.complete.skin_detail_spread`); (0, 3) when too little skin was seen.

    The plainer of the cheeks and the central band, band by band: what lies on skin (a beard on the
    cheeks, wrinkles and the nose's edges in the centre, a strand of hair) only adds detail, and the
    neck, ears and scalp the fill covers are plain skin. As measured: the caller caps it at
    :data:`DETAIL_MAX_SPREAD` for the fill and scales the seen skin's detail down to that cap."""
    from facetwin.texture.complete import detail_scales, skin_detail_spread
    from facetwin.texture.uvmap import tile_cm_per_uv

    edges = detail_scales(face_tile.raster.size / tile_cm_per_uv(model, 0))
    if edges.size < 2:  # a texel is coarser than skin's detail
        return np.zeros((0, 3))
    # Monotone photos: one gray channel's spreads, for all three.
    albedo = channel_mean(face_tile.albedo, keepdims=True) if monotone else face_tile.albedo
    plain = (face_tile.confidence > DETAIL_SOURCE_CONFIDENCE) & ~reg.features
    spreads = [skin_detail_spread(albedo, plain & region, edges) for region in (reg.core, reg.cheeks)]
    spreads = [x for x in spreads if x.shape[0]]
    spread = np.minimum.reduce(spreads) if spreads else skin_detail_spread(albedo, plain, edges)
    return np.repeat(spread, 3, axis=1) if monotone else spread


def _skin_tone(albedo: np.ndarray, region: np.ndarray, monotone: bool) -> np.ndarray:
    """(3,) fallback colour for what the photo does not show: the median albedo of well-seen plain skin
    (``region``), gray if monotone."""
    a = albedo[region]
    a = a[np.all(np.isfinite(a), axis=1)] if a.size else a
    if a.shape[0] == 0:
        from facetwin.texture.skin import skin_albedo_linear

        tone = skin_albedo_linear(0.08, 0.012)
    else:
        tone = np.median(a, axis=0)
    if monotone:
        tone = np.full(3, float(np.mean(tone)))
    return np.clip(tone, 0.0, 1.0).astype(np.float32)
