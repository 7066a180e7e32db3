"""GLSL sources of the raster backend (:mod:`twingap.render.raster`).

Vertex shaders take OpenCV camera coordinates (metres) and the OpenCV projection of
:func:`twingap.render.raster.opencv_projection`; the colour pass writes linear lit colour, the
flat pass colour, the instance id and planar depth; the composite pass applies the camera
response (:mod:`twingap.render.response`) and blends the background.
"""

from twingap.render.response import MAX_TONE_TERMS

#: Lights the colour shader takes (uniform array size).
MAX_LIGHTS = 8

VERT = """
#version 330
uniform mat4 u_proj;
uniform mat4 u_cam_T_obj;
uniform mat4 u_world_T_obj;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
out float v_zcam;
out vec3 v_world;
out vec3 v_normal;
out vec2 v_uv;
void main() {
    vec4 pc = u_cam_T_obj * vec4(in_pos, 1.0);
    v_zcam = pc.z;
    v_world = (u_world_T_obj * vec4(in_pos, 1.0)).xyz;
    v_normal = mat3(u_world_T_obj) * in_normal;
    v_uv = vec2(in_uv.x, 1.0 - in_uv.y);
    gl_Position = u_proj * pc;
}
"""

VERT_ID = """
#version 330
uniform mat4 u_proj;
uniform mat4 u_cam_T_obj;
in vec3 in_pos;
out float v_zcam;
void main() {
    vec4 pc = u_cam_T_obj * vec4(in_pos, 1.0);
    v_zcam = pc.z;
    gl_Position = u_proj * pc;
}
"""

FRAG_ID = """
#version 330
uniform int u_id;
in float v_zcam;
layout(location = 0) out int out_id;
layout(location = 1) out float out_z;
void main() {
    out_id = u_id;
    out_z = v_zcam;
}
"""

FRAG_COLOR = f"""
#version 330
#define MAX_LIGHTS {MAX_LIGHTS}
uniform sampler2D u_tex;
uniform int u_unlit;
uniform int u_id;
uniform float u_ambient;
uniform int u_nlights;
uniform int u_ltype[MAX_LIGHTS];      // 0 directional, 1 point
uniform vec3 u_lvec[MAX_LIGHTS];      // directional: unit vector towards the light; point: position
uniform vec3 u_lrad[MAX_LIGHTS];      // colour * intensity (linear)
uniform vec3 u_cam_pos;
uniform float u_specular;
uniform float u_shininess;
uniform int u_shadow_light;             // index of the shadow-casting light, -1 = no shadows
uniform mat4 u_light_vp;                // world -> shadow-map clip space (orthographic)
uniform float u_shadow_bias;            // depth bias in shadow-map depth units
uniform sampler2DShadow u_shadow_map;
in float v_zcam;
in vec3 v_world;
in vec3 v_normal;
in vec2 v_uv;
layout(location = 0) out vec4 out_lit;
layout(location = 1) out vec4 out_pass;
layout(location = 2) out int out_id;      // only attached without MSAA (single-pass mode)
layout(location = 3) out float out_z;

vec3 linear_to_srgb(vec3 c) {{
    c = clamp(c, 0.0, 1.0);
    return mix(12.92 * c, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(vec3(0.0031308), c));
}}

void main() {{
    out_id = u_id;
    out_z = v_zcam;
    vec3 albedo = texture(u_tex, v_uv).rgb;   // sRGB texture: GL returns linear values
    if (u_unlit != 0) {{
        out_lit = vec4(0.0);
        out_pass = vec4(linear_to_srgb(albedo), 1.0);
        return;
    }}
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    vec3 view = normalize(u_cam_pos - v_world);
    vec3 rad = vec3(u_ambient);
    vec3 spec = vec3(0.0);
    for (int i = 0; i < u_nlights; ++i) {{
        vec3 l = u_lvec[i];
        vec3 e = u_lrad[i];
        if (u_ltype[i] == 1) {{
            vec3 d = u_lvec[i] - v_world;
            float d2 = max(dot(d, d), 1e-8);
            l = d * inversesqrt(d2);
            e = e / d2;
        }}
        float ndl = max(dot(n, l), 0.0);
        if (i == u_shadow_light && ndl > 0.0) {{
            vec3 sp = (u_light_vp * vec4(v_world, 1.0)).xyz * 0.5 + 0.5;
            if (all(greaterThan(sp, vec3(0.0))) && all(lessThan(sp, vec3(1.0)))) {{
                float bias = u_shadow_bias * (1.0 + 4.0 * (1.0 - ndl));
                ndl *= texture(u_shadow_map, vec3(sp.xy, sp.z - bias));   // 2x2 PCF by the sampler
            }}
        }}
        rad += e * ndl;
        if (u_specular > 0.0 && ndl > 0.0) {{
            vec3 h = normalize(l + view);
            spec += e * u_specular * pow(max(dot(n, h), 0.0), u_shininess);
        }}
    }}
    out_lit = vec4(albedo * rad + spec, 1.0);
    out_pass = vec4(0.0);
}}
"""

VERT_QUAD = """
#version 330
in vec2 in_pos;
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); }
"""

FRAG_COMPOSITE = f"""
#version 330
uniform sampler2D u_lit;
uniform sampler2D u_pass;
uniform sampler2D u_bg;
uniform int u_bg_image;
uniform int u_use_pass;
uniform vec3 u_bg_color;       // sRGB in [0, 1]
uniform mat3 u_cmat;
uniform vec3 u_gain;           // exposure * white balance
uniform float u_inv_gamma;
uniform vec3 u_tone[{MAX_TONE_TERMS}];
uniform int u_quantize;
out vec4 out_color;

vec3 response(vec3 lin) {{
    vec3 x = max(u_gain * (u_cmat * lin), 0.0);
    x = pow(x, vec3(u_inv_gamma));
    vec3 y = vec3(0.0);
    vec3 p = vec3(1.0);
    for (int k = 0; k < {MAX_TONE_TERMS}; ++k) {{
        p *= x;
        y += u_tone[k] * p;
    }}
    return clamp(y, 0.0, 1.0);
}}

void main() {{
    ivec2 px = ivec2(gl_FragCoord.xy);
    vec4 lit = texelFetch(u_lit, px, 0);
    vec4 pas = u_use_pass != 0 ? texelFetch(u_pass, px, 0) : vec4(0.0);
    vec3 bg = u_bg_image != 0 ? texelFetch(u_bg, px, 0).rgb : u_bg_color;
    vec3 c = pas.rgb + max(1.0 - lit.a - pas.a, 0.0) * bg;
    if (lit.a > 0.0) c += lit.a * response(lit.rgb / lit.a);
    c = clamp(c, 0.0, 1.0);
    if (u_quantize != 0) c = floor(c * 255.0 + 0.5) / 255.0;
    out_color = vec4(c, 1.0);
}}
"""
